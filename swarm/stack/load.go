// Package stack turns a compose file (v3, read with compose-go) into the
// cluster objects of a stack as `docker stack deploy` makes them: services
// NAME_svc, networks NAME_net (NAME_default for services that name none),
// secrets and configs NAME_x made from their files, external ones
// referenced by name, everything labelled com.docker.stack.namespace=NAME,
// so `docker stack ls` through the Engine API and `apiaryctl stack ls`
// agree. Load and Convert are pure (the files they read aside); Deploy,
// Remove and List drive a control API.
package stack

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// Bounds of what Load reads.
const (
	// MaxFileBytes bounds a compose file.
	MaxFileBytes = 1 << 20
	// MaxServices bounds the services of a stack (each is a write).
	MaxServices = 256
	// MaxNameLength bounds a stack's name: NAME_svc must stay a valid
	// service name (63 characters).
	MaxNameLength = 32
)

// namePattern is compose's project name rule, which Docker's stack names
// also satisfy in practice: lowercase letters, digits, - and _.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// CheckName checks a stack's name.
func CheckName(name string) error {
	if len(name) == 0 || len(name) > MaxNameLength || !namePattern.MatchString(name) {
		return fmt.Errorf("stack name %q: want 1 to %d lowercase letters, digits, '-' or '_', starting with a letter or digit", name, MaxNameLength)
	}
	return nil
}

// File is a compose file: its path (relative paths in it are resolved
// against the working directory) and content.
type File struct {
	Name    string
	Content []byte
}

// Input is what Load reads.
type Input struct {
	// Name is the stack's name (the namespace).
	Name string
	// Files are merged in order, as `-c a.yml -c b.yml`.
	Files []File
	// WorkingDir resolves relative paths (env_file, secret files); the
	// first file's directory when empty.
	WorkingDir string
	// Env interpolates ${VAR} and feeds environment sources.
	Env map[string]string
}

// Warning names a compose field Apiary cannot honour: it is ignored, and
// said so.
type Warning struct {
	Path   string
	Reason string
}

func (w Warning) String() string { return w.Path + ": " + w.Reason }

// Load reads and validates the compose files into a project named after
// the stack. Every attribute of the model Apiary does not map is a
// Warning (see supported.go), never dropped silently.
func Load(ctx context.Context, in Input) (*types.Project, []Warning, error) {
	if err := CheckName(in.Name); err != nil {
		return nil, nil, err
	}
	if len(in.Files) == 0 {
		return nil, nil, fmt.Errorf("no compose file given")
	}
	details := types.ConfigDetails{WorkingDir: in.WorkingDir, Environment: in.Env}
	for _, f := range in.Files {
		if len(f.Content) > MaxFileBytes {
			return nil, nil, fmt.Errorf("compose file %s: %d bytes, at most %d", f.Name, len(f.Content), MaxFileBytes)
		}
		details.ConfigFiles = append(details.ConfigFiles, types.ConfigFile{Filename: f.Name, Content: f.Content})
	}
	if details.WorkingDir == "" {
		details.WorkingDir = dirOf(in.Files[0].Name)
	}
	var warnings []Warning
	report := func(found []loader.UnsupportedAttribute) {
		for _, f := range found {
			warnings = append(warnings, Warning{Path: string(f.Path), Reason: "not supported by Apiary stacks: ignored"})
		}
	}
	p, err := loader.LoadWithContext(ctx, details, func(o *loader.Options) {
		o.SetProjectName(in.Name, true)
		o.ResolvePaths = true
	}, loader.WithSupportedAttributes(supportedAttributes(), report))
	if err != nil {
		return nil, nil, fmt.Errorf("compose file: %w", err)
	}
	if len(p.Services) > MaxServices {
		return nil, nil, fmt.Errorf("compose file: %d services, at most %d", len(p.Services), MaxServices)
	}
	return p, warnings, nil
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i > 0 {
		return path[:i]
	}
	if strings.HasPrefix(path, "/") {
		return "/"
	}
	return "."
}
