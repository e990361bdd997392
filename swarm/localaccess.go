package swarm

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
)

// Local access to a node: its data dir and its control socket are what
// other users of the machine must not reach.
//
// The control socket serves the control API without TLS: whoever can open
// it is root on the cluster, so its permissions are the authentication (as
// for docker.sock), and they must hold from the moment the path exists.
// bind(2) creates a socket file with the process umask's mode, and a chmod
// afterwards leaves a window; changing the umask of a multi-threaded Go
// program would change it for every goroutine creating files meanwhile.
// So the socket is bound in a fresh directory of mode 0700 (no one else
// can reach it there), set to 0600, and renamed into place: rename(2) is
// atomic, and the path appears with mode 0600 or not at all.

// controlSocketMode is the control socket's permission bits.
const controlSocketMode = 0o600

// listenControlSocket creates a Unix socket at path with mode 0600 from
// the first moment it exists, replacing a stale one. Closing the listener
// removes the path, unless another listener has replaced it meanwhile.
func listenControlSocket(path string) (net.Listener, error) {
	// A short name: a socket path is limited to 107 bytes.
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".s")
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	defer os.RemoveAll(tmp)
	bound := filepath.Join(tmp, "s")
	lis, err := net.ListenUnix("unix", &net.UnixAddr{Name: bound, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	// The listener would unlink the name it was bound at, which is gone.
	lis.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		lis.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(bound, controlSocketMode); err != nil {
		return fail(err)
	}
	if err := os.Rename(bound, path); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return &socketListener{UnixListener: lis, path: path, file: fi}, nil
}

// socketListener removes its socket file when closed, if the path still
// names it.
type socketListener struct {
	*net.UnixListener
	path string
	file fs.FileInfo
	once sync.Once
}

func (l *socketListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.file) {
			os.Remove(l.path)
		}
	})
	return err
}

// gatedListener accepts no connection before ready is closed: a client
// that connects early waits in the listen backlog, so its call is answered
// once the node has finished starting rather than by a half-started node
// (right after init, the cluster object the join tokens live in may not
// exist yet).
type gatedListener struct {
	net.Listener
	ready  <-chan struct{}
	closed chan struct{}
	once   sync.Once
}

func (l *gatedListener) Accept() (net.Conn, error) {
	select {
	case <-l.ready:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	return l.Listener.Accept()
}

func (l *gatedListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// listenSocket creates the node's control socket, which answers once the
// node has started (Node.ready).
func (n *Node) listenSocket(path string) (net.Listener, error) {
	lis, err := listenControlSocket(path)
	if err != nil {
		return nil, err
	}
	return &gatedListener{Listener: lis, ready: n.ready, closed: make(chan struct{})}, nil
}

// dataDirMode is the data dir's permission bits: it holds the node's key,
// the raft log (every secret of the cluster) and the control socket.
const dataDirMode = 0o700

// secureDataDir creates dir with mode 0700, or tightens an existing one
// that its group or others may read, write or enter. A directory this
// process cannot tighten (another user's) is refused.
func secureDataDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, dataDirMode); err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data dir %s: not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(dir, dataDirMode); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("data dir %s: mode %v lets group or others in, and it cannot be tightened (%w): chmod 700 it or use another directory", dir, fi.Mode().Perm(), err)
		}
		return fmt.Errorf("data dir %s: tighten to %v: %w", dir, fs.FileMode(dataDirMode), err)
	}
	log.Warn("data dir was open to group or others: tightened", "dir", dir, "was", fi.Mode().Perm().String(), "now", fs.FileMode(dataDirMode).String())
	return nil
}
