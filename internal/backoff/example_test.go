package backoff_test

import (
	"fmt"
	"time"

	"github.com/apiary-io/apiary/internal/backoff"
)

// A retry loop waits longer after each failure in a row, and starts short
// again after a success.
func Example() {
	b := backoff.New(backoff.Config{Base: time.Second, Max: time.Minute})
	for range 8 {
		fmt.Print(b.Next(), " ")
	}
	b.Reset()
	fmt.Println("| after a success:", b.Next())
	// Output: 1s 2s 4s 8s 16s 32s 1m0s 1m0s | after a success: 1s
}
