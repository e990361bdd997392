package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Every generated file in the module is what rpcgen makes of its contract
// today: a contract changed without `go generate` fails here.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	found := 0
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "//go:generate go run github.com/apiary-io/apiary/internal/rpcgen ") {
				continue
			}
			found++
			args := strings.Fields(line)[4:]
			var typ, service, outFile string
			for i := 0; i+1 < len(args); i += 2 {
				switch args[i] {
				case "-type":
					typ = args[i+1]
				case "-service":
					service = args[i+1]
				case "-out":
					outFile = args[i+1]
				}
			}
			dir, file := filepath.Dir(path), filepath.Base(path)
			if outFile == "" {
				outFile = strings.TrimSuffix(file, ".go") + "_rpc.go"
			}
			want, err := Generate(dir, file, typ, service)
			if err != nil {
				t.Errorf("%s: %v", path, err)
				continue
			}
			got, err := os.ReadFile(filepath.Join(dir, outFile))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s is not what rpcgen makes of %s today (run go generate ./%s): %v", filepath.Join(dir, outFile), typ, mustRel(root, dir), err)
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == 0 {
		t.Fatal("no rpcgen directive found in the module")
	}
}

func mustRel(root, dir string) string {
	r, err := filepath.Rel(root, dir)
	if err != nil {
		return dir
	}
	return r
}
