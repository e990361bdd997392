package gossip

import (
	"bytes"
	"fmt"
)

// SetKeys replaces the gossip keys: primary encrypts what this node sends
// from now on, and primary and accepted decrypt what it receives; any other
// key is dropped, so a peer still using only a dropped key is refused.
//
// A rotation that loses no message takes three deliveries to every node,
// each after the previous one reached all of them: SetKeys(old, new) (new is
// known everywhere before anyone sends with it), SetKeys(new, old) (the
// overlap), SetKeys(new). Swarm gets the same effect from one key list by
// having every node encrypt with the second-newest key. A node that misses a
// step drops some messages until it catches up; push/pull repairs its tables.
func (m *Member) SetKeys(primary []byte, accepted ...[]byte) error {
	if err := checkKey("primary key", primary); err != nil {
		return err
	}
	keep := [][]byte{bytes.Clone(primary)}
	for i, k := range accepted {
		if err := checkKey(fmt.Sprintf("accepted key %d", i), k); err != nil {
			return err
		}
		keep = append(keep, bytes.Clone(k))
	}
	m.keysMu.Lock()
	defer m.keysMu.Unlock()
	for _, k := range keep {
		if err := m.keyring.AddKey(k); err != nil {
			return fmt.Errorf("gossip: add key: %w", err)
		}
	}
	if err := m.keyring.UseKey(keep[0]); err != nil {
		return fmt.Errorf("gossip: use primary key: %w", err)
	}
	for _, k := range m.keyring.GetKeys() {
		if !containsKey(keep, k) {
			if err := m.keyring.RemoveKey(k); err != nil {
				return fmt.Errorf("gossip: remove key: %w", err)
			}
		}
	}
	return nil
}

func containsKey(keys [][]byte, k []byte) bool {
	for _, x := range keys {
		if bytes.Equal(x, k) {
			return true
		}
	}
	return false
}
