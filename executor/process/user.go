//go:build unix

package process

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// taskUser is who a task runs as.
type taskUser struct {
	cred *syscall.Credential // nil: as the agent
	home string
	uid  int
	gid  int
}

// resolveUser looks up spec ("name", "uid", "name:group" or "uid:gid") for an
// agent running as euid. Only root may run tasks as another user.
func resolveUser(spec string, euid int) (taskUser, error) {
	if spec == "" {
		home := os.Getenv("HOME")
		if u, err := user.Current(); err == nil && u.HomeDir != "" {
			home = u.HomeDir
		}
		return taskUser{home: home, uid: euid, gid: os.Getegid()}, nil
	}
	name, group, hasGroup := strings.Cut(spec, ":")
	if name == "" || hasGroup && group == "" {
		return taskUser{}, fmt.Errorf("user %q: want name, uid, name:group or uid:gid", spec)
	}
	tu := taskUser{home: "/"}
	var groups []uint32
	u, err := lookupUser(name)
	switch {
	case err == nil:
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil {
			return taskUser{}, fmt.Errorf("user %q: non-numeric uid or gid", spec)
		}
		tu.uid, tu.gid = uid, gid
		if u.HomeDir != "" {
			tu.home = u.HomeDir
		}
		if ids, err := u.GroupIds(); err == nil {
			for _, s := range ids {
				if g, err := strconv.ParseUint(s, 10, 32); err == nil && int(g) != gid {
					groups = append(groups, uint32(g))
				}
			}
		}
	case isNumber(name):
		// A uid missing from the user database runs with gid 0, as in Docker.
		tu.uid, _ = strconv.Atoi(name)
	default:
		return taskUser{}, fmt.Errorf("user %q: %w", spec, err)
	}
	if hasGroup {
		gid, err := lookupGroup(group)
		if err != nil {
			return taskUser{}, fmt.Errorf("user %q: %w", spec, err)
		}
		tu.gid = gid
		groups = nil
	}
	if tu.uid != euid && euid != 0 {
		return taskUser{}, fmt.Errorf("user %q: running a task as another user needs root, and the agent runs as uid %d", spec, euid)
	}
	if tu.uid != euid || euid == 0 {
		tu.cred = &syscall.Credential{Uid: uint32(tu.uid), Gid: uint32(tu.gid), Groups: groups}
	}
	if groups == nil && tu.cred != nil {
		tu.cred.Groups = []uint32{} // drop the agent's supplementary groups
	}
	return tu, nil
}

func lookupUser(name string) (*user.User, error) {
	if isNumber(name) {
		return user.LookupId(name)
	}
	return user.Lookup(name)
}

func lookupGroup(name string) (int, error) {
	if isNumber(name) {
		return strconv.Atoi(name)
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// checkReachable tells clearly when u cannot get into dir (rather than
// "fork/exec: permission denied"): every directory on the way needs the
// execute bit for u.
func checkReachable(dir string, u taskUser) error {
	if u.cred == nil || u.uid == 0 {
		return nil
	}
	groups := map[uint32]bool{uint32(u.gid): true}
	for _, g := range u.cred.Groups {
		groups[g] = true
	}
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		mode := fi.Mode().Perm()
		var ok2 bool
		switch {
		case st.Uid == uint32(u.uid):
			ok2 = mode&0o100 != 0
		case groups[st.Gid]:
			ok2 = mode&0o010 != 0
		default:
			ok2 = mode&0o001 != 0
		}
		if !ok2 {
			return fmt.Errorf("working directory %s: uid %d cannot enter %s (mode %v)", dir, u.uid, d, mode)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}
