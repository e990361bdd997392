package api

import (
	"crypto/rand"
	"time"
)

// Meta is the bookkeeping every stored object carries.
type Meta struct {
	// Version is the store index (the raft index once replicated) of the
	// object's last write. An update that carries an older Version than the
	// stored one is refused with a conflict: optimistic concurrency.
	Version   uint64    `json:"Version"`
	CreatedAt time.Time `json:"CreatedAt"`
	UpdatedAt time.Time `json:"UpdatedAt"`
}

// Annotations name an object and attach user labels to it.
type Annotations struct {
	Name   string            `json:"Name"`
	Labels map[string]string `json:"Labels,omitempty"`
}

// Copy returns a deep copy.
func (a Annotations) Copy() Annotations {
	a.Labels = copyMap(a.Labels)
	return a
}

// Kind names a table of the store.
type Kind string

// The kinds of object the store holds.
const (
	KindCluster Kind = "cluster"
	KindNode    Kind = "node"
	KindService Kind = "service"
	KindTask    Kind = "task"
	KindNetwork Kind = "network"
	KindSecret  Kind = "secret"
	KindConfig  Kind = "config"
)

// Object is what every stored object implements.
type Object interface {
	GetID() string
	GetMeta() Meta
	SetMeta(Meta)
	Kind() Kind
	// CopyObject returns a deep copy, so that readers can never alter what
	// the store holds.
	CopyObject() Object
}

const idAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

// IDLength is the length of the IDs NewID makes (Docker's swarm IDs are 25
// characters of base 36 too).
const IDLength = 25

// NewID returns a random object ID of 25 base-36 characters (~129 bits).
func NewID() string {
	// Bytes below 252 (7 × 36) map to a character each without bias; the
	// rest are drawn again. One read of 40 bytes almost always suffices
	// (25 needed, 1.6% of bytes refused): a read per character, through
	// big.Int, was 1% of a write's CPU.
	var id [IDLength]byte
	var buf [40]byte
	for n := 0; n < IDLength; {
		if _, err := rand.Read(buf[:]); err != nil {
			panic("api: crypto/rand failed: " + err.Error())
		}
		for _, c := range buf {
			if c < 252 && n < IDLength {
				id[n] = idAlphabet[c%36]
				n++
			}
		}
	}
	return string(id[:])
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func copySlice[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append([]T(nil), s...)
}

func copyPtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}
