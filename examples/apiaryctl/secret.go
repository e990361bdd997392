package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/client"
)

// The secret and config commands are one set of commands over two kinds
// (docker secret|config create|ls|inspect|rm); dataCmds says which.
type dataCmds[T api.Object] struct {
	kind  string // "secret" or "config"
	limit int    // the most data one holds
	// create makes one from a name, labels and data.
	create func(cl *client.Client, ctx context.Context, a api.Annotations, data []byte) (T, error)
	get    func(*client.Client, context.Context, string) (T, error)
	list   func(*client.Client, context.Context, control.ObjectFilter) ([]T, error)
	remove func(*client.Client, context.Context, string) error
	annot  func(T) api.Annotations
	meta   func(T) api.Meta
	// Versions (secretupdate.go).
	update   func(cl *client.Client, ctx context.Context, ref string, a api.Annotations, data []byte) (T, []string, error)
	versions func(*client.Client, context.Context, string) ([]T, error)
	version  func(T) uint64
}

func (c *cli) secretCmd() *cobra.Command {
	return dataCommands(c, dataCmds[*api.Secret]{
		kind: "secret", limit: api.MaxSecretSize,
		create: func(cl *client.Client, ctx context.Context, a api.Annotations, data []byte) (*api.Secret, error) {
			return cl.CreateSecret(ctx, api.SecretSpec{Annotations: a, Data: data})
		},
		get: (*client.Client).GetSecret, list: (*client.Client).ListSecrets, remove: (*client.Client).RemoveSecret,
		annot: func(s *api.Secret) api.Annotations { return s.Spec.Annotations },
		meta:  func(s *api.Secret) api.Meta { return s.Meta },
		update: func(cl *client.Client, ctx context.Context, ref string, a api.Annotations, data []byte) (*api.Secret, []string, error) {
			up, err := cl.UpdateSecret(ctx, ref, api.SecretSpec{Annotations: a, Data: data})
			if err != nil {
				return nil, nil, err
			}
			return up.Secret, up.Services, nil
		},
		versions: (*client.Client).SecretVersions,
		version:  (*api.Secret).DataVersion,
	})
}

func (c *cli) configCmd() *cobra.Command {
	return dataCommands(c, dataCmds[*api.Config]{
		kind: "config", limit: api.MaxConfigSize,
		create: func(cl *client.Client, ctx context.Context, a api.Annotations, data []byte) (*api.Config, error) {
			return cl.CreateConfig(ctx, api.ConfigSpec{Annotations: a, Data: data})
		},
		get: (*client.Client).GetConfig, list: (*client.Client).ListConfigs, remove: (*client.Client).RemoveConfig,
		annot: func(s *api.Config) api.Annotations { return s.Spec.Annotations },
		meta:  func(s *api.Config) api.Meta { return s.Meta },
		update: func(cl *client.Client, ctx context.Context, ref string, a api.Annotations, data []byte) (*api.Config, []string, error) {
			up, err := cl.UpdateConfig(ctx, ref, api.ConfigSpec{Annotations: a, Data: data})
			if err != nil {
				return nil, nil, err
			}
			return up.Config, up.Services, nil
		},
		versions: (*client.Client).ConfigVersions,
		version:  (*api.Config).DataVersion,
	})
}

func dataCommands[T api.Object](c *cli, k dataCmds[T]) *cobra.Command {
	cmd := &cobra.Command{Use: k.kind, Short: "Manage " + k.kind + "s"}
	what := "the " + k.kind + "s"
	if k.kind == "secret" {
		what += " (never their data)"
	}
	cmd.AddCommand(dataCreate(c, k), dataLs(c, k), dataUpdate(c, k), dataVersions(c, k),
		inspectCmd(c, "inspect "+strings.ToUpper(k.kind)+"[@VERSION]...", "Show "+what+" in detail (JSON): the newest version, or NAME@VERSION", k.get),
		removeCmd(c, "rm "+strings.ToUpper(k.kind)+"[@VERSION]...", "Remove "+k.kind+"s, every version, that no service's spec or previous spec uses (NAME@VERSION: that older version alone)",
			func(cl *client.Client, ctx context.Context, ref string) error {
				_, err := k.get(cl, ctx, ref)
				return err
			}, k.remove))
	return cmd
}

func dataCreate[T api.Object](c *cli, k dataCmds[T]) *cobra.Command {
	var labels []string
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] " + strings.ToUpper(k.kind) + " FILE|-",
		Short: "Create a " + k.kind + " from a file, or from standard input with -",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a := api.Annotations{Name: args[0]}
			var err error
			if a.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			data, err := readData(cmd.InOrStdin(), args[1], k.limit)
			if err != nil {
				return fmt.Errorf("%s %q: %w", k.kind, args[0], err)
			}
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			defer cancel()
			o, err := k.create(cl, ctx, a, data)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.out, o.GetID())
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&labels, "label", "l", nil, k.kind+" label K=V (repeatable)")
	return cmd
}

// readData reads a secret's or config's data from a file, or standard
// input for "-", reading at most limit+1 bytes: more is refused here
// rather than sent.
func readData(stdin io.Reader, file string, limit int) ([]byte, error) {
	r := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%s: more than %d bytes (500 KiB), the most one may hold", file, limit)
	}
	return data, nil
}

func parseLabels(labels []string) (map[string]string, error) {
	var out map[string]string
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--label %q: want K=V", l)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out, nil
}

func dataLs[T api.Object](c *cli, k dataCmds[T]) *cobra.Command {
	return listCmd(c, k.kind, k.list, func(o T) string { return o.GetID() },
		[]string{"ID", "NAME", "VERSION", "CREATED", "UPDATED"}, func(o T) string {
			m := k.meta(o)
			return fmt.Sprintf("%s\t%s\t%d\t%s ago\t%s ago", o.GetID(), k.annot(o).Name, k.version(o), ago(m.CreatedAt), ago(m.UpdatedAt))
		})
}

// listCmd is an `ls` with docker's --filter, -q and --format: cols
// head the table, row is one object's line (tab-separated), id what -q
// prints.
func listCmd[T any](c *cli, noun string, list func(*client.Client, context.Context, control.ObjectFilter) ([]T, error),
	id func(T) string, cols []string, row func(T) string) *cobra.Command {
	var filters []string
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List " + noun + "s",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filter, err := parseNetworkFilters(filters)
			if err != nil {
				return err
			}
			return listPrinted(c, quiet, list, filter, id, cols, row)
		},
	}
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "filter: name=PART, id=PREFIX, label=KEY or label=KEY=VALUE (repeatable)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the "+noun+" IDs")
	c.addFormat(cmd)
	return cmd
}

// listPrinted lists and prints as listCmd says.
func listPrinted[T any](c *cli, quiet bool, list func(*client.Client, context.Context, control.ObjectFilter) ([]T, error),
	filter control.ObjectFilter, id func(T) string, cols []string, row func(T) string) error {
	f, err := parseFormat(c.format)
	if err != nil {
		return err
	}
	cl, ctx, cancel, err := c.session()
	if err != nil {
		return err
	}
	defer cancel()
	all, err := list(cl, ctx, filter)
	if err != nil {
		return err
	}
	switch {
	case c.format == "json":
		return c.printJSON(all)
	case quiet:
		for _, o := range all {
			fmt.Fprintln(c.out, id(o))
		}
		return nil
	case f.tmpl != nil:
		// A template reads the columns as fields: "NETWORK ID" is .ID,
		// "CREATED" .Created.
		recs := make([]record, len(all))
		fields := make([]string, len(cols))
		for i, col := range cols {
			fields[i] = fieldOf(col)
		}
		for i, o := range all {
			recs[i] = record{}
			for j, v := range strings.Split(row(o), "\t") {
				if j < len(fields) {
					recs[i][fields[j]] = v
				}
			}
		}
		return c.printList(c.format, false, all, nil, recs, fields)
	}
	w := table(c.out, cols...)
	for _, o := range all {
		fmt.Fprintln(w, row(o))
	}
	return w.Flush()
}

// fileRefFlags are the service flags of secrets and configs, as docker's:
// --secret and --config on create; --secret-add, --secret-rm, --config-add
// and --config-rm on update.
type fileRefFlags struct {
	secrets, secretAdd, secretRm []string
	configs, configAdd, configRm []string
}

func (f *fileRefFlags) register(fs *pflag.FlagSet, create bool) {
	const form = "NAME or source=NAME[,target=FILE][,uid=UID][,gid=GID][,mode=OCTAL] (repeatable)"
	if create {
		fs.StringArrayVar(&f.secrets, "secret", nil, "give the tasks a secret: "+form)
		fs.StringArrayVar(&f.configs, "config", nil, "give the tasks a config: "+form)
		return
	}
	fs.StringArrayVar(&f.secretAdd, "secret-add", nil, "give the tasks a secret: "+form)
	fs.StringArrayVar(&f.secretRm, "secret-rm", nil, "take a secret away, by name or ID (repeatable)")
	fs.StringArrayVar(&f.configAdd, "config-add", nil, "give the tasks a config: "+form)
	fs.StringArrayVar(&f.configRm, "config-rm", nil, "take a config away, by name or ID (repeatable)")
}

// apply writes the flags into the template. Secrets and configs are named
// as the user wrote them: the cluster resolves them, and refuses one it
// does not know, naming it.
func (f *fileRefFlags) apply(t *api.TaskSpec) error {
	secretRefs, err := applyRefs("secret", t.Secrets, f.secrets, f.secretAdd, f.secretRm,
		func(r api.SecretReference) (string, string) { return r.SecretName, r.SecretID },
		func(name string, file *api.FileTarget) api.SecretReference {
			return api.SecretReference{SecretName: name, File: file}
		})
	if err != nil {
		return err
	}
	configRefs, err := applyRefs("config", t.Configs, f.configs, f.configAdd, f.configRm,
		func(r api.ConfigReference) (string, string) { return r.ConfigName, r.ConfigID },
		func(name string, file *api.FileTarget) api.ConfigReference {
			return api.ConfigReference{ConfigName: name, File: file}
		})
	if err != nil {
		return err
	}
	t.Secrets, t.Configs = secretRefs, configRefs
	return nil
}

// applyRefs sets (create), or removes then adds (update), a template's
// references of one kind.
func applyRefs[R any](kind string, refs []R, set, add, rm []string, ident func(R) (name, id string), newRef func(string, *api.FileTarget) R) ([]R, error) {
	if len(set) > 0 {
		refs = nil
		add = set
	}
	for _, x := range rm {
		before := len(refs)
		refs = slices.DeleteFunc(slices.Clone(refs), func(r R) bool {
			name, id := ident(r)
			return x != "" && (name == x || strings.HasPrefix(id, x))
		})
		if len(refs) == before {
			return nil, fmt.Errorf("--%s-rm %q: the service has no such %s", kind, x, kind)
		}
	}
	flag := kind
	if len(set) == 0 {
		flag = kind + "-add"
	}
	for _, s := range add {
		name, file, err := parseFileRef(s)
		if err != nil {
			return nil, fmt.Errorf("--%s %q: %v", flag, s, err)
		}
		refs = append(refs, newRef(name, file))
	}
	return refs, nil
}

// parseFileRef reads Docker's two forms of --secret and --config: NAME, or
// source=NAME[,target=FILE][,uid=UID][,gid=GID][,mode=MODE] (src= is
// source's other spelling). The mode is octal, with or without a leading
// 0 (Docker reads "400" as decimal, a surprise this avoids).
func parseFileRef(s string) (string, *api.FileTarget, error) {
	if !strings.Contains(s, "=") {
		if s == "" || strings.Contains(s, ",") {
			return "", nil, fmt.Errorf("want NAME or source=NAME[,target=FILE][,uid=UID][,gid=GID][,mode=OCTAL]")
		}
		return s, nil, nil
	}
	var name string
	var file api.FileTarget
	for _, field := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(field, "=")
		if !ok || v == "" {
			return "", nil, fmt.Errorf("%q: want KEY=VALUE", field)
		}
		switch strings.ToLower(k) {
		case "source", "src":
			name = v
		case "target":
			file.Name = v
		case "uid":
			file.UID = v
		case "gid":
			file.GID = v
		case "mode":
			m, err := strconv.ParseUint(v, 8, 32)
			if err != nil {
				return "", nil, fmt.Errorf("mode %q: want octal permission bits such as 0400", v)
			}
			file.Mode = os.FileMode(m)
		default:
			return "", nil, fmt.Errorf("unknown key %q (want source, target, uid, gid or mode)", k)
		}
	}
	if name == "" {
		return "", nil, fmt.Errorf("source: missing")
	}
	if file == (api.FileTarget{}) {
		return name, nil, nil
	}
	return name, &file, nil
}
