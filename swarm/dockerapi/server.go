package dockerapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/versions"

	"github.com/apiary-io/apiary/swarm/api/control"
)

// API versions: the newest one the server speaks, which the docker CLI
// negotiates down to (CLI 28 speaks up to 1.50; it uses min(its own,
// ours)), and the oldest it accepts. The types are Docker 28.5's (1.51);
// 1.47 is Docker 27.x's, and nothing in the swarm subset changed shape
// between them.
const (
	APIVersion    = "1.47"
	MinAPIVersion = "1.24"
)

// Backend is what the server drives: the control API of the node (its
// control socket: on a worker every method answers control.ErrNotManager,
// which becomes Docker's 503) and the node-local leave. *client.Client is
// one.
type Backend interface {
	control.API
	Leave(ctx context.Context, force bool) error
}

// Self describes the node serving the API, for /_ping, /info and /swarm.
type Self struct {
	NodeID    string
	ClusterID string
	Hostname  string
	// Addr is the address other nodes reach the node at (host:port).
	Addr string
	// Manager says the node runs a manager now.
	Manager bool
	// Managers are the managers' addresses the node knows.
	Managers []string
	// Executor names the node's executor kind ("process", "docker").
	Executor string
	// Locked: the node is a manager waiting for the cluster's unlock key
	// (autolock): /info says so, /swarm/unlock takes the key
	// (Config.Unlock), and the rest answers that the swarm is locked.
	Locked bool
}

// Config configures a Server. Start from DefaultConfig; Backend and Self
// are required.
type Config struct {
	Backend Backend
	// Self is called for every request that describes the node.
	Self func() Self
	// Unlock gives a locked node the unlock key (POST /swarm/unlock,
	// `docker swarm unlock`); nil on a node that is running, which is
	// not locked.
	Unlock func(ctx context.Context, key string) error
	Logger *slog.Logger
	// MaxBodyBytes bounds a request body: a secret or config of
	// api.MaxSecretSize encodes to ~683 KiB of base64 in JSON, a service
	// spec to at most api.MaxSpecBytes. Larger bodies get 413.
	MaxBodyBytes int64
	// MaxFilterValues bounds the values of a list's filters, all keys
	// together (each is matched against every object listed).
	MaxFilterValues int
	// MaxLogTail bounds a logs request's tail (lines per task); "all"
	// asks each node for everything it kept, which the executor's own
	// log files bound.
	MaxLogTail int
	// EventsPoll is how often /events looks at the cluster's objects.
	EventsPoll time.Duration
	// MaxEventStreams bounds the /events streams open at once (each
	// polls the control API).
	MaxEventStreams int
}

// DefaultConfig returns the bounds above at their defaults.
func DefaultConfig() Config {
	return Config{
		MaxBodyBytes:    1 << 20,
		MaxFilterValues: 100,
		MaxLogTail:      10_000,
		EventsPoll:      time.Second,
		MaxEventStreams: 64,
	}
}

// Server serves the Docker Engine API's swarm subset over HTTP.
type Server struct {
	cfg    Config
	mux    *http.ServeMux
	log    *slog.Logger
	events chan struct{} // a token per open /events stream
}

// New returns a server; Handler serves it.
func New(cfg Config) (*Server, error) {
	def := DefaultConfig()
	if cfg.Backend == nil || cfg.Self == nil {
		return nil, errors.New("dockerapi: Config.Backend and Config.Self are required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = def.MaxBodyBytes
	}
	if cfg.MaxFilterValues <= 0 {
		cfg.MaxFilterValues = def.MaxFilterValues
	}
	if cfg.MaxLogTail <= 0 {
		cfg.MaxLogTail = def.MaxLogTail
	}
	if cfg.EventsPoll <= 0 {
		cfg.EventsPoll = def.EventsPoll
	}
	if cfg.MaxEventStreams <= 0 {
		cfg.MaxEventStreams = def.MaxEventStreams
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), log: cfg.Logger, events: make(chan struct{}, cfg.MaxEventStreams)}
	s.routes()
	return s, nil
}

// handlerFunc is a route's handler: an error is written as Docker does.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) handle(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

func (s *Server) routes() {
	s.handle("GET /_ping", s.ping)
	s.handle("HEAD /_ping", s.ping)
	s.handle("GET /version", s.version)
	s.handle("GET /info", s.info)
	s.handle("GET /containers/json", s.containers)
	s.handle("GET /distribution/{name...}", s.distribution)
	s.handle("GET /events", s.eventsStream)

	s.handle("GET /swarm", s.swarmInspect)
	s.handle("POST /swarm/init", s.swarmInit)
	s.handle("POST /swarm/join", s.swarmJoin)
	s.handle("POST /swarm/leave", s.swarmLeave)
	s.handle("POST /swarm/update", s.swarmUpdate)
	s.handle("GET /swarm/unlockkey", s.swarmUnlockKey)
	s.handle("POST /swarm/unlock", s.swarmUnlock)

	s.handle("GET /nodes", s.nodeList)
	s.handle("GET /nodes/{id}", s.nodeInspect)
	s.handle("POST /nodes/{id}/update", s.nodeUpdate)
	s.handle("DELETE /nodes/{id}", s.nodeRemove)

	s.handle("GET /services", s.serviceList)
	s.handle("POST /services/create", s.serviceCreate)
	s.handle("GET /services/{id}", s.serviceInspect)
	s.handle("POST /services/{id}/update", s.serviceUpdate)
	s.handle("DELETE /services/{id}", s.serviceRemove)
	s.handle("GET /services/{id}/logs", s.serviceLogs)

	s.handle("GET /tasks", s.taskList)
	s.handle("GET /tasks/{id}", s.taskInspect)
	s.handle("GET /tasks/{id}/logs", s.taskLogs)

	s.handle("GET /networks", s.networkList)
	s.handle("GET /networks/{id}", s.networkInspect)
	s.handle("POST /networks/create", s.networkCreate)
	s.handle("DELETE /networks/{id}", s.networkRemove)

	s.handle("GET /secrets", s.secretList)
	s.handle("POST /secrets/create", s.secretCreate)
	s.handle("GET /secrets/{id}", s.secretInspect)
	s.handle("DELETE /secrets/{id}", s.secretRemove)
	s.handle("POST /secrets/{id}/update", s.notSupported("secret update: secrets cannot change once created in Apiary (create a new one)"))

	s.handle("GET /configs", s.configList)
	s.handle("POST /configs/create", s.configCreate)
	s.handle("GET /configs/{id}", s.configInspect)
	s.handle("DELETE /configs/{id}", s.configRemove)
	s.handle("POST /configs/{id}/update", s.notSupported("config update: configs cannot change once created in Apiary (create a new one)"))

	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errNotFound(fmt.Errorf("page not found: %s %s is not part of the swarm API Apiary serves", r.Method, r.URL.Path)))
	})
}

type versionKey struct{}

// versionPrefix is "/v1.47/..." as the Docker client sends it.
var versionPrefix = regexp.MustCompile(`^/v([0-9]+\.[0-9]+)(/.*)$`)

// Handler returns the HTTP handler: the version prefix is checked and
// stripped, bodies are bounded, and every answer carries the API-Version
// and OSType headers as the engine's do.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", APIVersion)
		w.Header().Set("Ostype", "linux")
		w.Header().Set("Server", "Apiary (Docker Engine API "+APIVersion+")")
		if err := checkPeer(r); err != nil {
			s.writeError(w, r, errForbidden(err))
			return
		}
		version := APIVersion
		if m := versionPrefix.FindStringSubmatch(r.URL.Path); m != nil {
			version = m[1]
			if versions.GreaterThan(version, APIVersion) {
				s.writeError(w, r, errInvalid(fmt.Errorf("client version %s is too new. Maximum supported API version is %s", version, APIVersion)))
				return
			}
			if versions.LessThan(version, MinAPIVersion) {
				s.writeError(w, r, errInvalid(fmt.Errorf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", version, MinAPIVersion)))
				return
			}
			r2 := r.Clone(context.WithValue(r.Context(), versionKey{}, version))
			r2.URL.Path = m[2]
			r2.URL.RawPath = ""
			r = r2
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		}
		s.mux.ServeHTTP(w, r)
	})
}

// requestVersion is the API version of the request (the newest when its
// path has none).
func requestVersion(r *http.Request) string {
	if v, ok := r.Context().Value(versionKey{}).(string); ok {
		return v
	}
	return APIVersion
}

// Serve serves the API on lis until it fails or ctx ends.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10,
		BaseContext: func(net.Listener) context.Context { return ctx }, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := hs.Shutdown(sctx); err != nil {
				hs.Close()
			}
		case <-done:
		}
	}()
	err := hs.Serve(lis)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// readJSON decodes a request body into v: malformed JSON, unknown fields,
// trailing data and oversized bodies are refused, naming the problem.
func readJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return errInvalid(fmt.Errorf("unsupported Content-Type header (%s): must be 'application/json'", ct))
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return errTooLarge(fmt.Errorf("request body is larger than %d bytes", tooBig.Limit))
		case errors.Is(err, io.EOF):
			return errInvalid(errors.New("invalid JSON: request body is empty"))
		}
		return errInvalid(fmt.Errorf("invalid JSON: %w", err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errTooLarge(fmt.Errorf("request body is larger than %d bytes", tooBig.Limit))
		}
		return errInvalid(errors.New("invalid JSON: data after the object"))
	}
	return nil
}

// writeJSON writes v with status code.
func writeJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	return json.NewEncoder(w).Encode(v)
}

// queryBool reads a boolean query parameter as Docker does ("", "0",
// "no", "false", "none" are false; anything else true), for the
// parameters its router reads with BoolValue.
func queryBool(r *http.Request, name string) bool {
	switch strings.ToLower(strings.TrimSpace(r.URL.Query().Get(name))) {
	case "", "0", "no", "false", "none":
		return false
	}
	return true
}

// strictBool reads a boolean parameter Docker parses with ParseBool.
func strictBool(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errInvalid(fmt.Errorf("invalid value for %s: %s", name, v))
	}
	return b, nil
}

// queryVersion reads the version an update is made at.
func queryVersion(r *http.Request, what string) (uint64, error) {
	raw := r.URL.Query().Get("version")
	v, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return 0, errInvalid(fmt.Errorf("invalid %s version '%s': %v", what, raw, err))
	}
	return v, nil
}

func (s *Server) notSupported(msg string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		return errNotImplemented(errors.New(msg))
	}
}
