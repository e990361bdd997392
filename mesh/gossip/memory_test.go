package gossip

import (
	"fmt"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
)

func TestMemoryHubBehavesLikeGossip(t *testing.T) {
	hub := NewMemoryHub()
	a, err := hub.Join("node-a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := hub.Join("node-b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hub.Join("node-a"); err == nil {
		t.Error("a node ID already up joined again")
	}
	l := &eventLog{}
	stop := b.Watch("app", "", l.add)
	defer stop()

	for _, step := range []func() error{
		func() error { return a.Put("app", "endpoints", "task", []byte("v1")) },
		func() error { return a.Put("app", "endpoints", "task", []byte("v2")) },
		func() error { return a.Put("other", "endpoints", "task", []byte("filtered")) },
		func() error { return a.Delete("app", "endpoints", "task") },
		func() error { return a.Delete("app", "endpoints", "task") }, // absent: nothing
		func() error { return a.Put("app", "endpoints", "task2", []byte("w")) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if e, ok := b.Get("app", "endpoints", "node-a", "task2"); !ok || string(e.Value) != "w" {
		t.Errorf("b's Get = %v, %v", e, ok)
	}
	var walked []string
	b.Walk("", "", func(e Entry) bool { walked = append(walked, e.Network+"/"+e.Key); return true })
	if fmt.Sprint(walked) != "[app/task2 other/task]" {
		t.Errorf("Walk saw %v", walked)
	}
	hub.Down("node-a")
	if err := a.Put("app", "endpoints", "x", nil); err == nil {
		t.Error("a node that went down could still put")
	}
	want := "create v1,update v2,delete v2,create w,delete w,node-down ,"
	testutil.EventuallyWhy(t, 10*time.Second, "b's events", func() (bool, string) {
		got := ""
		for _, ev := range l.list() {
			got += ev.Kind.String() + " " + string(ev.Entry.Value) + ","
		}
		return got == want, got
	})
	n := 0
	b.Walk("", "", func(Entry) bool { n++; return true })
	if n != 0 {
		t.Errorf("%d entries left after their owner went down", n)
	}
	if _, err := hub.Join("node-a"); err != nil {
		t.Errorf("a node that went down could not join again: %v", err)
	}
}

// A watch's stop may be called after the watchers were closed (by Close, or
// the node going down), more than once, and at the same time as Close.
func TestStopAfterCloseIsSafe(t *testing.T) {
	ca := newTestCA(t, "root")
	m := startMember(t, testConfig(t, ca, "node-a"))
	stop1 := m.Watch("", "", func(Event) {})
	stop2 := m.Watch("", "", func(Event) {})
	done := make(chan struct{})
	go func() { stop2(); close(done) }() // racing Close
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	<-done
	stop1()
	stop1()
	stop2()
	// A watch made after Close does nothing, and stopping it is safe too.
	m.Watch("", "", func(Event) { t.Error("a watch made after Close saw an event") })()

	hub := NewMemoryHub()
	n, err := hub.Join("node-a")
	if err != nil {
		t.Fatal(err)
	}
	stop := n.Watch("", "", func(Event) {})
	hub.Down("node-a")
	stop()
	stop()
}
