package api

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// The deep-copy tests fill every field of an object by reflection, so a field
// added later is populated without anyone updating the test, and a Copy that
// forgets to duplicate it is caught.

var timeType = reflect.TypeFor[time.Time]()

// filler sets every field reachable from a value to a non-zero value, the
// same ones for the same sequence of calls.
type filler struct{ n int }

func (f *filler) fill(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	f.n++
	if v.Type() == timeType {
		// Treated as a value: its unexported fields (a *Location that is
		// never written) are not Copy's concern.
		v.Set(reflect.ValueOf(time.Date(2020, 1, 1, 0, 0, f.n, 0, time.UTC)))
		return
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(f.n))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(f.n))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(f.n) / 1000)
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", f.n))
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		f.fill(t, v.Elem(), path)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			f.fill(t, v.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for i := range 2 {
			k := reflect.New(v.Type().Key()).Elem()
			f.fill(t, k, path+"[key]")
			e := reflect.New(v.Type().Elem()).Elem()
			f.fill(t, e, fmt.Sprintf("%s[%d]", path, i))
			v.SetMapIndex(k, e)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			sf := v.Type().Field(i)
			if !sf.IsExported() {
				t.Fatalf("%s.%s is unexported: teach this test (and Copy) about it", path, sf.Name)
			}
			f.fill(t, v.Field(i), path+"."+sf.Name)
		}
	default:
		t.Fatalf("%s: kind %s: teach this test (and Copy) about it", path, v.Kind())
	}
}

// mutate changes every leaf reachable from v in place, writing through
// pointers, slices and maps, so any memory the copy shares with the original
// shows up as a change to the original.
func mutate(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	if v.Type() == timeType {
		v.Set(reflect.ValueOf(v.Interface().(time.Time).Add(time.Hour)))
		return
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + 1000)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(v.Uint() + 1000)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(v.Float() + 1)
	case reflect.String:
		v.SetString(v.String() + "!")
	case reflect.Pointer:
		if !v.IsNil() {
			mutate(t, v.Elem(), path)
		}
	case reflect.Slice:
		for i := range v.Len() {
			mutate(t, v.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			mutate(t, e, path+"["+fmt.Sprint(k)+"]")
			v.SetMapIndex(k, e)
		}
		k := reflect.New(v.Type().Key()).Elem()
		if k.Kind() == reflect.String {
			k.SetString("added-by-mutate")
		}
		v.SetMapIndex(k, reflect.New(v.Type().Elem()).Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			mutate(t, v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	default:
		t.Fatalf("%s: kind %s", path, v.Kind())
	}
}

// aliases lists the paths at which a and b (same type) share a pointer, a
// slice's backing array or a map: the precise places a Copy is shallow.
func aliases(a, b reflect.Value, path string, out *[]string) {
	if a.Type() == timeType {
		return
	}
	switch a.Kind() {
	case reflect.Pointer:
		// Pointers to zero-size values (*GlobalService) may all be equal
		// (Go's zerobase) and hold nothing to share.
		if a.IsNil() || b.IsNil() || a.Type().Elem().Size() == 0 {
			return
		}
		if a.Pointer() == b.Pointer() {
			*out = append(*out, path)
			return
		}
		aliases(a.Elem(), b.Elem(), path, out)
	case reflect.Slice:
		if a.Len() > 0 && b.Len() > 0 && a.Type().Elem().Size() > 0 && a.Pointer() == b.Pointer() {
			*out = append(*out, path)
			return
		}
		for i := range min(a.Len(), b.Len()) {
			aliases(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i), out)
		}
	case reflect.Map:
		if !a.IsNil() && !b.IsNil() && a.Pointer() == b.Pointer() {
			*out = append(*out, path)
			return
		}
		for _, k := range a.MapKeys() {
			if bv := b.MapIndex(k); bv.IsValid() {
				aliases(a.MapIndex(k), bv, path+"["+fmt.Sprint(k)+"]", out)
			}
		}
	case reflect.Struct:
		for i := range a.NumField() {
			aliases(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name, out)
		}
	}
}

// deepCopyProblems fills a T completely, copies it with copyFn and returns
// what is wrong with the copy: unequal, sharing memory with the original, or
// not independent (mutating all of the copy changes the original).
func deepCopyProblems[T any](t *testing.T, copyFn func(T) T) []string {
	t.Helper()
	name := reflect.TypeFor[T]().String()
	var orig, want T
	(&filler{}).fill(t, reflect.ValueOf(&orig).Elem(), name)
	(&filler{}).fill(t, reflect.ValueOf(&want).Elem(), name)
	if !reflect.DeepEqual(orig, want) {
		t.Fatalf("%s: filler is not deterministic", name)
	}

	c := copyFn(orig)
	if !reflect.DeepEqual(c, orig) {
		return []string{fmt.Sprintf("copy differs from the original:\n%+v\n%+v", c, orig)}
	}
	var problems, shared []string
	aliases(reflect.ValueOf(&orig).Elem(), reflect.ValueOf(&c).Elem(), name, &shared)
	if len(shared) > 0 {
		problems = append(problems, fmt.Sprintf("copy shares memory with the original at %v", shared))
	}
	mutate(t, reflect.ValueOf(&c).Elem(), name)
	if reflect.DeepEqual(c, orig) {
		t.Fatalf("%s: mutate changed nothing", name)
	}
	if !reflect.DeepEqual(orig, want) {
		problems = append(problems, "changing the copy changed the original")
	}
	return problems
}

func checkDeepCopy[T any](t *testing.T, copyFn func(T) T) {
	t.Helper()
	for _, p := range deepCopyProblems(t, copyFn) {
		t.Errorf("%s: %s", reflect.TypeFor[T](), p)
	}
}

func TestDeepCopies(t *testing.T) {
	t.Run("Service", func(t *testing.T) { checkDeepCopy(t, (*Service).Copy) })
	t.Run("Task", func(t *testing.T) { checkDeepCopy(t, (*Task).Copy) })
	t.Run("Node", func(t *testing.T) { checkDeepCopy(t, (*Node).Copy) })
	t.Run("Cluster", func(t *testing.T) { checkDeepCopy(t, (*Cluster).Copy) })
	t.Run("Network", func(t *testing.T) { checkDeepCopy(t, (*Network).Copy) })
	t.Run("Secret", func(t *testing.T) { checkDeepCopy(t, (*Secret).Copy) })
	t.Run("Config", func(t *testing.T) { checkDeepCopy(t, (*Config).Copy) })
	t.Run("ServiceSpec", func(t *testing.T) { checkDeepCopy(t, ServiceSpec.Copy) })
	t.Run("TaskSpec", func(t *testing.T) { checkDeepCopy(t, TaskSpec.Copy) })
	t.Run("TaskStatus", func(t *testing.T) { checkDeepCopy(t, TaskStatus.Copy) })
	t.Run("EndpointSpec", func(t *testing.T) { checkDeepCopy(t, EndpointSpec.Copy) })
	t.Run("Annotations", func(t *testing.T) { checkDeepCopy(t, Annotations.Copy) })
	t.Run("Resources", func(t *testing.T) { checkDeepCopy(t, Resources.Copy) })
	t.Run("NodeDescription", func(t *testing.T) { checkDeepCopy(t, NodeDescription.Copy) })
	t.Run("NodeSpec", func(t *testing.T) { checkDeepCopy(t, NodeSpec.Copy) })
	t.Run("ClusterSpec", func(t *testing.T) { checkDeepCopy(t, ClusterSpec.Copy) })
	t.Run("NetworkSpec", func(t *testing.T) { checkDeepCopy(t, NetworkSpec.Copy) })
	t.Run("ServiceWithDefaults", func(t *testing.T) {
		// WithDefaults promises a deep copy too.
		checkDeepCopy(t, func(s ServiceSpec) ServiceSpec { return s.WithDefaults() })
	})

	// CopyObject is what the store uses: it must be as deep as Copy.
	objects := map[string]func(t *testing.T){
		"Service": func(t *testing.T) { checkDeepCopy(t, func(o *Service) *Service { return o.CopyObject().(*Service) }) },
		"Task":    func(t *testing.T) { checkDeepCopy(t, func(o *Task) *Task { return o.CopyObject().(*Task) }) },
		"Node":    func(t *testing.T) { checkDeepCopy(t, func(o *Node) *Node { return o.CopyObject().(*Node) }) },
		"Cluster": func(t *testing.T) { checkDeepCopy(t, func(o *Cluster) *Cluster { return o.CopyObject().(*Cluster) }) },
		"Network": func(t *testing.T) { checkDeepCopy(t, func(o *Network) *Network { return o.CopyObject().(*Network) }) },
		"Secret":  func(t *testing.T) { checkDeepCopy(t, func(o *Secret) *Secret { return o.CopyObject().(*Secret) }) },
		"Config":  func(t *testing.T) { checkDeepCopy(t, func(o *Config) *Config { return o.CopyObject().(*Config) }) },
	}
	for name, f := range objects {
		t.Run("CopyObject/"+name, f)
	}
}

// The checker itself must catch a shallow copy, or the tests above prove
// nothing: here a Copy that forgets one nested pointer.
func TestDeepCopyCheckerCatchesShallowCopies(t *testing.T) {
	buggy := func(s *Service) *Service {
		c := s.Copy()
		c.Spec.TaskTemplate.Placement = s.Spec.TaskTemplate.Placement // the bug
		return c
	}
	problems := deepCopyProblems(t, buggy)
	want := []string{
		"copy shares memory with the original at [*api.Service.Spec.TaskTemplate.Placement]",
		"changing the copy changed the original",
	}
	if !reflect.DeepEqual(problems, want) {
		t.Fatalf("got %q\nwant %q", problems, want)
	}
	// And a copy that shares a map.
	problems = deepCopyProblems(t, func(n *Node) *Node { c := *n; return &c })
	if len(problems) != 2 {
		t.Fatalf("struct assignment passed as a deep copy: %q", problems)
	}
}

func TestCopyNil(t *testing.T) {
	if (*Service)(nil).Copy() != nil || (*Task)(nil).Copy() != nil || (*Node)(nil).Copy() != nil ||
		(*Cluster)(nil).Copy() != nil || (*Network)(nil).Copy() != nil {
		t.Fatal("Copy of nil is not nil")
	}
	// Nil collections stay nil, so a copy compares equal to its original.
	var s ServiceSpec
	if c := s.Copy(); !reflect.DeepEqual(c, s) {
		t.Fatalf("zero spec copy: %+v", c)
	}
	var ts TaskSpec
	if c := ts.Copy(); !reflect.DeepEqual(c, ts) {
		t.Fatalf("zero task spec copy: %+v", c)
	}
}
