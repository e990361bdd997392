// Command rpcgen writes the gRPC glue of an Apiary contract: a Go interface
// whose methods are the service's methods. A contract file says
//
//	//go:generate go run github.com/apiary-io/apiary/internal/rpcgen -type API -service apiary.Control
//
// and `go generate` writes <file>_rpc.go beside it with:
//
//   - <Type>Service, the gRPC service name, and <Type>Methods, the full
//     method names (for authorization policies);
//   - Register<Type>(s, impl, guard), which serves impl;
//   - New<Type>Client(conn, opts...), an implementation of the interface
//     that calls the service;
//   - Unimplemented<Type>{Err}, which answers every method with Err (a node
//     that does not offer the service says why);
//   - the wire messages: one request struct per method holding its
//     parameters, one response struct holding its result.
//
// A method is `M(ctx context.Context, params...) (R, error)`,
// `M(ctx context.Context, params...) error`, or, for a server stream,
// `M(ctx context.Context, params...) (rpc.Stream[T], error)`. Parameters
// must be named: their names (exported) are the request's fields. Messages
// travel in swarm/rpc's codec, and errors keep their sentinels
// (rpc.RegisterError).
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

const rpcPath = "github.com/apiary-io/apiary/swarm/rpc"

func main() {
	typ := flag.String("type", "", "the interface to generate for (required)")
	service := flag.String("service", "", "the gRPC service name, e.g. apiary.Control (required)")
	out := flag.String("out", "", "output file (default: the file of the go:generate line, _rpc.go)")
	flag.Parse()
	file := os.Getenv("GOFILE")
	if *typ == "" || *service == "" || file == "" {
		fmt.Fprintln(os.Stderr, "rpcgen: -type and -service are required, run from go generate (GOFILE unset)")
		os.Exit(2)
	}
	if *out == "" {
		*out = strings.TrimSuffix(file, ".go") + "_rpc.go"
	}
	src, err := Generate(".", file, *typ, *service)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rpcgen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "rpcgen:", err)
		os.Exit(1)
	}
}

// method is one method of the contract.
type method struct {
	name   string
	params []param // after the context
	result string  // "" for error only
	stream string  // the message type of a server stream
}

type param struct{ name, typ string }

// Generate returns the glue of interface typ declared in file (in dir).
func Generate(dir, file, typ, service string) ([]byte, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join(dir, file), nil, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	iface, err := findInterface(f, typ)
	if err != nil {
		return nil, err
	}
	imports := map[string]string{} // name -> path
	for _, im := range f.Imports {
		path, _ := strconv.Unquote(im.Path.Value)
		name := filepath.Base(path)
		if im.Name != nil {
			name = im.Name.Name
		}
		imports[name] = path
	}
	used := map[string]bool{}
	expr := func(e ast.Expr) string {
		ast.Inspect(e, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && imports[id.Name] != "" {
					used[id.Name] = true
				}
			}
			return true
		})
		var b bytes.Buffer
		printer.Fprint(&b, fset, e)
		return b.String()
	}
	var methods []method
	for _, fld := range iface.Methods.List {
		ft, ok := fld.Type.(*ast.FuncType)
		if !ok || len(fld.Names) != 1 {
			return nil, fmt.Errorf("%s: only methods are supported (no embedded interfaces)", typ)
		}
		m := method{name: fld.Names[0].Name}
		if m, err = methodOf(m, ft, expr, imports); err != nil {
			return nil, fmt.Errorf("%s.%s: %w", typ, m.name, err)
		}
		methods = append(methods, m)
	}
	if len(methods) == 0 {
		return nil, fmt.Errorf("%s has no methods", typ)
	}
	return render(f.Name.Name, file, typ, service, methods, used, imports)
}

func findInterface(f *ast.File, typ string) (*ast.InterfaceType, error) {
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.TYPE {
			continue
		}
		for _, s := range gd.Specs {
			ts := s.(*ast.TypeSpec)
			if ts.Name.Name != typ {
				continue
			}
			it, ok := ts.Type.(*ast.InterfaceType)
			if !ok {
				return nil, fmt.Errorf("%s is not an interface", typ)
			}
			return it, nil
		}
	}
	return nil, fmt.Errorf("no interface %s in the file", typ)
}

func methodOf(m method, ft *ast.FuncType, expr func(ast.Expr) string, imports map[string]string) (method, error) {
	if ft.Params == nil || len(ft.Params.List) == 0 || expr(ft.Params.List[0].Type) != "context.Context" {
		return m, errors.New("the first parameter must be a context.Context")
	}
	for i, p := range ft.Params.List {
		if len(p.Names) == 0 {
			return m, errors.New("parameters must be named: their names are the request's fields")
		}
		for j, n := range p.Names {
			if i == 0 && j == 0 {
				continue // the context
			}
			m.params = append(m.params, param{name: n.Name, typ: expr(p.Type)})
		}
	}
	if ft.Results == nil {
		return m, errors.New("the last result must be an error")
	}
	var results []ast.Expr
	for _, r := range ft.Results.List {
		for range max(1, len(r.Names)) {
			results = append(results, r.Type)
		}
	}
	if len(results) == 0 || len(results) > 2 || expr(results[len(results)-1]) != "error" {
		return m, errors.New("results must be (error) or (T, error)")
	}
	if len(results) == 2 {
		if ix, ok := results[0].(*ast.IndexExpr); ok {
			if sel, ok := ix.X.(*ast.SelectorExpr); ok && sel.Sel.Name == "Stream" {
				if id, ok := sel.X.(*ast.Ident); ok && imports[id.Name] == rpcPath {
					m.stream = expr(ix.Index)
					return m, nil
				}
			}
		}
		m.result = expr(results[0])
	}
	return m, nil
}

func exported(s string) string {
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

// unexported lowers a name's leading initialism as Go spells it: API is
// api, HTTPServer httpServer, Greeter greeter.
func unexported(s string) string {
	r := []rune(s)
	n := 0
	for n < len(r) && unicode.IsUpper(r[n]) {
		n++
	}
	if n > 1 && n < len(r) {
		n-- // the last capital starts the next word
	}
	for i := 0; i < max(n, 1); i++ {
		r[i] = unicode.ToLower(r[i])
	}
	return string(r)
}

func render(pkg, file, typ, service string, methods []method, used map[string]bool, imports map[string]string) ([]byte, error) {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	low := unexported(typ)
	// The generated names follow the interface's: exported for an
	// exported contract, unexported for a package's internal one.
	name := func(prefix string) string {
		if unicode.IsUpper([]rune(typ)[0]) {
			return exported(prefix) + typ
		}
		return unexported(prefix) + exported(typ)
	}
	register, newClient, unimpl := name("Register"), name("New")+"Client", name("Unimplemented")
	p("// Code generated by rpcgen (internal/rpcgen) from %s in %s. DO NOT EDIT.\n\n", typ, file)
	p("package %s\n\n", pkg)
	var names []string
	for n := range used {
		if n != "context" && imports[n] != "google.golang.org/grpc" {
			names = append(names, n)
		}
	}
	hasRPC := false
	for _, n := range names {
		hasRPC = hasRPC || imports[n] == rpcPath
	}
	if !hasRPC {
		names = append(names, "rpc")
		imports["rpc"] = rpcPath
	}
	imports["context"], imports["grpc"] = "context", "google.golang.org/grpc"
	names = append(names, "context", "grpc")
	sort.Slice(names, func(i, j int) bool { return imports[names[i]] < imports[names[j]] })
	// The standard library first, then the others, as goimports groups.
	p("import (\n")
	for _, std := range []bool{true, false} {
		for _, n := range names {
			path := imports[n]
			if isStd := !strings.Contains(strings.Split(path, "/")[0], "."); isStd != std {
				continue
			}
			if filepath.Base(path) == n {
				p("\t%q\n", path)
			} else {
				p("\t%s %q\n", n, path)
			}
		}
		if std {
			p("\n")
		}
	}
	p(")\n\n")
	p("// %sService is the gRPC service of %s.\nconst %sService = %q\n\n", typ, typ, typ, service)
	p("// %sMethods are the full names of %s's methods, for authorization\n// policies.\nvar %sMethods = []string{\n", typ, typ, typ)
	for _, m := range methods {
		p("\t\"/%s/%s\",\n", service, m.name)
	}
	p("}\n\n")

	// Server.
	p("// %s serves impl as %sService on s; guard, when not nil, runs before\n// every call and may refuse it.\n", register, typ)
	p("func %s(s grpc.ServiceRegistrar, impl %s, guard rpc.Guard) {\n", register, typ)
	p("\tdesc := rpc.NewService(%sService, guard, []rpc.UnaryMethod{\n", typ)
	for _, m := range methods {
		if m.stream != "" {
			continue
		}
		p("\t\trpc.HandleUnary(%q, func(ctx context.Context, r *%s%sRequest) (*%s%sResponse, error) {\n", m.name, low, m.name, low, m.name)
		args := []string{"ctx"}
		for _, pa := range m.params {
			args = append(args, "r."+exported(pa.name))
		}
		if m.result == "" {
			p("\t\t\treturn &%s%sResponse{}, impl.%s(%s)\n", low, m.name, m.name, strings.Join(args, ", "))
		} else {
			p("\t\t\tres, err := impl.%s(%s)\n\t\t\tif err != nil {\n\t\t\t\treturn nil, err\n\t\t\t}\n", m.name, strings.Join(args, ", "))
			p("\t\t\treturn &%s%sResponse{Result: res}, nil\n", low, m.name)
		}
		p("\t\t}),\n")
	}
	p("\t}, []rpc.StreamMethod{\n")
	for _, m := range methods {
		if m.stream == "" {
			continue
		}
		args := []string{"ctx"}
		for _, pa := range m.params {
			args = append(args, "r."+exported(pa.name))
		}
		p("\t\trpc.HandleStream(%q, func(ctx context.Context, r *%s%sRequest) (rpc.Stream[%s], error) {\n", m.name, low, m.name, m.stream)
		p("\t\t\treturn impl.%s(%s)\n\t\t}),\n", m.name, strings.Join(args, ", "))
	}
	p("\t})\n\ts.RegisterService(&desc, nil)\n}\n\n")

	// Client.
	p("// %s returns a %s that calls %sService over conn; errors keep\n// their sentinels (rpc.RegisterError).\n", newClient, typ, typ)
	p("func %s(conn grpc.ClientConnInterface, opts ...grpc.CallOption) %s {\n\treturn &%sClient{conn: conn, opts: opts}\n}\n\n", newClient, typ, low)
	p("type %sClient struct {\n\tconn grpc.ClientConnInterface\n\topts []grpc.CallOption\n}\n\n", low)
	for _, m := range methods {
		var params, fields []string
		params = append(params, "ctx context.Context")
		for _, pa := range m.params {
			params = append(params, pa.name+" "+pa.typ)
			fields = append(fields, exported(pa.name)+": "+pa.name)
		}
		req := fmt.Sprintf("&%s%sRequest{%s}", low, m.name, strings.Join(fields, ", "))
		switch {
		case m.stream != "":
			p("func (c *%sClient) %s(%s) (rpc.Stream[%s], error) {\n", low, m.name, strings.Join(params, ", "), m.stream)
			p("\treturn rpc.CallStream[%s](ctx, c.conn, %sService, %q, %s, c.opts...)\n}\n\n", m.stream, typ, m.name, req)
		case m.result == "":
			p("func (c *%sClient) %s(%s) error {\n", low, m.name, strings.Join(params, ", "))
			p("\t_, err := rpc.Call[%s%sResponse](ctx, c.conn, %sService, %q, %s, c.opts...)\n\treturn err\n}\n\n", low, m.name, typ, m.name, req)
		default:
			p("func (c *%sClient) %s(%s) (%s, error) {\n", low, m.name, strings.Join(params, ", "), m.result)
			p("\tresp, err := rpc.Call[%s%sResponse](ctx, c.conn, %sService, %q, %s, c.opts...)\n", low, m.name, typ, m.name, req)
			p("\tif err != nil {\n\t\tvar zero %s\n\t\treturn zero, err\n\t}\n\treturn resp.Result, nil\n}\n\n", m.result)
		}
	}

	// Unimplemented.
	p("// %s answers every method of %s with Err, or with an\n// Unimplemented status when Err is nil.\n", unimpl, typ)
	p("type %s struct{ Err error }\n\n", unimpl)
	for _, m := range methods {
		var params []string
		params = append(params, "context.Context")
		for _, pa := range m.params {
			params = append(params, pa.typ)
		}
		full := fmt.Sprintf("%q", "/"+service+"/"+m.name)
		switch {
		case m.stream != "":
			p("func (u %s) %s(%s) (rpc.Stream[%s], error) {\n\treturn nil, rpc.Unimplemented(%s, u.Err)\n}\n\n", unimpl, m.name, strings.Join(params, ", "), m.stream, full)
		case m.result == "":
			p("func (u %s) %s(%s) error {\n\treturn rpc.Unimplemented(%s, u.Err)\n}\n\n", unimpl, m.name, strings.Join(params, ", "), full)
		default:
			p("func (u %s) %s(%s) (%s, error) {\n\tvar zero %s\n\treturn zero, rpc.Unimplemented(%s, u.Err)\n}\n\n", unimpl, m.name, strings.Join(params, ", "), m.result, m.result, full)
		}
	}
	p("var (\n\t_ %s = (*%sClient)(nil)\n\t_ %s = %s{}\n)\n\n", typ, low, typ, unimpl)

	// Messages.
	p("// The wire messages of %s.\ntype (\n", typ)
	for _, m := range methods {
		if len(m.params) == 0 {
			p("\t%s%sRequest struct{}\n", low, m.name)
		} else {
			p("\t%s%sRequest struct {\n", low, m.name)
			for _, pa := range m.params {
				p("\t\t%s %s `json:%q`\n", exported(pa.name), pa.typ, exported(pa.name)+",omitzero")
			}
			p("\t}\n")
		}
		if m.stream == "" {
			if m.result == "" {
				p("\t%s%sResponse struct{}\n", low, m.name)
			} else {
				p("\t%s%sResponse struct {\n\t\tResult %s `json:\"Result,omitzero\"`\n\t}\n", low, m.name, m.result)
			}
		}
	}
	p(")\n")
	out, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("format the generated code: %w\n%s", err, b.String())
	}
	return out, nil
}
