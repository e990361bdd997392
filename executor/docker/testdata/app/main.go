// Command app is the program in the Docker executor's test images (FROM
// scratch, so it is all there is in them). Its first argument picks what it
// does:
//
//	run             print a start line, run until SIGTERM or SIGINT, exit 0
//	tick MS         like run, printing "tick N" every MS milliseconds
//	exit CODE       exit with CODE at once
//	ignore-term     ignore SIGTERM, print the line in $READY, run until killed
//	print L1 L2 ... print the lines in order, the even ones (L2, L4) on
//	                stderr, then exit 0
//	oom             after a second, allocate and touch memory until the
//	                kernel kills it
//	health          a health check: exit with $HEALTH_EXIT (default 0)
//	cat FILE        print FILE, exit 0 (1 if it cannot be read)
//	write FILE TEXT write TEXT into FILE, print "wrote FILE", exit 0
//
// The start line of run and tick is
// "apiary-test-app <$APP_VERSION or v1> task=<$APIARY_TASK_ID> started".
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: app run|tick|exit|ignore-term|print|oom|health|cat|write ...")
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "run":
		sigs := notifyStop()
		started()
		waitForStop(sigs, 0)
	case "tick":
		sigs := notifyStop()
		started()
		ms := 100
		if len(args) > 0 {
			ms = atoi(args[0])
		}
		waitForStop(sigs, time.Duration(ms)*time.Millisecond)
	case "exit":
		code := 0
		if len(args) > 0 {
			code = atoi(args[0])
		}
		os.Exit(code)
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		ready := os.Getenv("READY")
		if ready == "" {
			ready = "ready"
		}
		fmt.Println(ready)
		for {
			time.Sleep(time.Hour) // (select {} would be a deadlock to the runtime)
		}
	case "print":
		for i, l := range args {
			w := os.Stdout
			if i%2 == 1 {
				w = os.Stderr
			}
			fmt.Fprintln(w, l)
			// The engine reads stdout and stderr apart: a pause keeps
			// the lines in order in its log.
			time.Sleep(30 * time.Millisecond)
		}
	case "oom":
		// An OOM kill right after the start can go unreported: the
		// runtime watches the container's cgroup for OOMs only once it
		// started (containerd issue 8180). Give it a second.
		time.Sleep(time.Second)
		var held [][]byte
		for i := 1; ; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			held = append(held, b)
			if i%4 == 0 {
				fmt.Println("allocated", i, "MiB")
			}
		}
	case "health":
		code := 0
		if s := os.Getenv("HEALTH_EXIT"); s != "" {
			code = atoi(s)
		}
		os.Exit(code)
	case "cat":
		if len(args) != 1 {
			fail("usage: app cat FILE")
		}
		b, err := os.ReadFile(args[0])
		if err != nil {
			fail(err.Error())
		}
		os.Stdout.Write(b)
	case "write":
		if len(args) != 2 {
			fail("usage: app write FILE TEXT")
		}
		if err := os.WriteFile(args[0], []byte(args[1]), 0o644); err != nil {
			fail(err.Error())
		}
		fmt.Println("wrote", args[0])
	default:
		fail("unknown mode " + os.Args[1])
	}
}

func started() {
	version := os.Getenv("APP_VERSION")
	if version == "" {
		version = "v1"
	}
	fmt.Printf("apiary-test-app %s task=%s started\n", version, os.Getenv("APIARY_TASK_ID"))
}

// notifyStop starts catching SIGTERM and SIGINT, first thing: PID 1 in a
// container gets no default handling of them, so one that arrives before
// (a stop right after the start, as the conformance suite's) would be
// ignored and the task killed only after its grace period.
func notifyStop() <-chan os.Signal {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	return sigs
}

// waitForStop runs until sigs delivers SIGTERM or SIGINT, ticking when
// tick is set.
func waitForStop(sigs <-chan os.Signal, tick time.Duration) {
	var c <-chan time.Time
	if tick > 0 {
		t := time.NewTicker(tick)
		defer t.Stop()
		c = t.C
	}
	for n := 1; ; {
		select {
		case s := <-sigs:
			fmt.Println("stopping on", s)
			return
		case <-c:
			fmt.Println("tick", n)
			n++
		}
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fail(err.Error())
	}
	return n
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "app:", msg)
	os.Exit(2)
}
