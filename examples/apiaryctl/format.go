package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"text/template"
	"unicode"
)

// listFormat is a parsed --format, as docker's: "" or "table" for the
// default table, "json" for the objects as JSON, "table TEMPLATE" for a
// table of the template's fields under their headers, or a Go template
// printed once per object ({{.ID}}, {{json .}}, {{upper .Name}}).
type listFormat struct {
	json  bool
	tmpl  *template.Template
	table bool // headers above the template's lines
}

// maxFormatBytes bounds a --format template.
const maxFormatBytes = 4 << 10

// parseFormat reads --format; a template that does not parse is refused
// naming the flag.
func parseFormat(s string) (listFormat, error) {
	switch strings.TrimSpace(s) {
	case "", "table":
		return listFormat{}, nil
	case "json":
		return listFormat{json: true}, nil
	}
	if len(s) > maxFormatBytes {
		return listFormat{}, fmt.Errorf("--format: %d bytes, at most %d", len(s), maxFormatBytes)
	}
	f := listFormat{}
	if rest, ok := strings.CutPrefix(s, "table "); ok {
		f.table, s = true, rest
	}
	// Docker reads \t and \n typed in a shell's quotes as tab and newline.
	s = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(s)
	t, err := template.New("format").Option("missingkey=error").Funcs(template.FuncMap{
		"json": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
		"upper": strings.ToUpper,
		"lower": strings.ToLower,
		"title": titled,
		"join":  strings.Join,
		"split": strings.Split,
		"truncate": func(s string, n int) string {
			if len(s) > n {
				return s[:n]
			}
			return s
		},
	}).Parse(s)
	if err != nil {
		return listFormat{}, fmt.Errorf("--format: %w", err)
	}
	f.tmpl = t
	return f, nil
}

// record is one listed object's fields under docker's names ("ID",
// "Name", "DesiredState"...), what a --format template reads.
type record map[string]string

// header names a field as docker's table headers do: "DesiredState" is
// "DESIRED STATE", "ID" stays "ID".
func header(field string) string {
	var b strings.Builder
	rs := []rune(field)
	for i, r := range rs {
		if i > 0 && unicode.IsUpper(r) && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]))) {
			b.WriteByte(' ')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// fieldOf names a table column's field: "NETWORK ID" is ID, "CREATED"
// Created, "DESIRED STATE" DesiredState.
func fieldOf(col string) string {
	if col == "ID" || strings.HasSuffix(col, " ID") {
		return "ID"
	}
	var b strings.Builder
	for _, w := range strings.Fields(col) {
		b.WriteString(titled(strings.ToLower(w)))
	}
	return b.String()
}

// printList prints a listing: the objects as JSON (--format json), their
// full IDs (-q), each through a --format template, or the default table of
// cols (field names of the records, headed as header names them).
func (c *cli) printList(format string, quiet bool, objects any, ids []string, recs []record, cols []string) error {
	f, err := parseFormat(format)
	if err != nil {
		return err
	}
	switch {
	case quiet:
		for _, id := range ids { // in full, as docker's -q
			fmt.Fprintln(c.out, id)
		}
		return nil
	case f.json:
		return c.printJSON(objects)
	case f.tmpl == nil:
		heads := make([]string, len(cols))
		for i, col := range cols {
			heads[i] = header(col)
		}
		w := table(c.out, heads...)
		for _, r := range recs {
			vals := make([]string, len(cols))
			for i, col := range cols {
				vals[i] = r[col]
			}
			fmt.Fprintln(w, strings.Join(vals, "\t"))
		}
		return w.Flush()
	}
	w := tabwriter.NewWriter(c.out, 0, 4, 3, ' ', 0)
	if f.table {
		heads := record{}
		for _, col := range cols {
			heads[col] = header(col)
		}
		for _, r := range recs {
			for k := range r {
				heads[k] = header(k)
			}
		}
		if err := f.tmpl.Execute(w, heads); err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		fmt.Fprintln(w)
	}
	for _, r := range recs {
		if err := f.tmpl.Execute(w, r); err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		fmt.Fprintln(w)
	}
	return w.Flush()
}

// listFlags are the flags every list command has: --filter, -q and
// --format.
type listFlags struct {
	filters []string
	quiet   bool
	format  string
}

func (l *listFlags) register(fs interface {
	StringArrayVarP(*[]string, string, string, []string, string)
	BoolVarP(*bool, string, string, bool, string)
	StringVar(*string, string, string, string)
}, keys, noun string) {
	fs.StringArrayVarP(&l.filters, "filter", "f", nil, "filter: KEY=VALUE, keys "+keys+" (repeatable: a key given twice matches either value)")
	fs.BoolVarP(&l.quiet, "quiet", "q", false, "print only the "+noun+" IDs")
	fs.StringVar(&l.format, "format", "", `"json", a Go template such as "{{.ID}} {{.Name}}", or "table TEMPLATE"`)
}

// filterSet is a parsed --filter: values by key. Objects must match
// every key given, and one of its values.
type filterSet map[string][]string

// parseFilters reads --filter KEY=VALUE for the keys a command knows;
// another key, or no "=", is refused naming the flag.
func parseFilters(filters []string, keys ...string) (filterSet, error) {
	out := filterSet{}
	for _, s := range filters {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--filter %q: want KEY=VALUE", s)
		}
		if !contains(keys, k) {
			return nil, fmt.Errorf("--filter %q: unknown key %q (want %s)", s, k, strings.Join(keys, ", "))
		}
		out[k] = append(out[k], v)
	}
	return out, nil
}

// match reports whether the values an object has for key match the
// filter: any given value equal to (or, with prefix, a prefix of) one of
// them. A key not given matches everything.
func (f filterSet) match(key string, prefix bool, have ...string) bool {
	want, ok := f[key]
	if !ok {
		return true
	}
	for _, w := range want {
		for _, h := range have {
			if h == w || (prefix && strings.HasPrefix(h, w)) {
				return true
			}
		}
	}
	return false
}

// matchLabels matches label=KEY or label=KEY=VALUE filters against labels:
// every one given must hold (docker's label filters are all required).
func (f filterSet) matchLabels(key string, labels map[string]string) bool {
	for _, w := range f[key] {
		k, v, withValue := strings.Cut(w, "=")
		got, ok := labels[k]
		if !ok || (withValue && got != v) {
			return false
		}
	}
	return true
}
