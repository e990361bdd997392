package controlapi

import (
	"errors"
	"time"

	"github.com/apiary-io/apiary/store"
)

func isConflict(err error) bool { return errors.Is(err, store.ErrConflict) }

func nowUTC() time.Time { return time.Now().UTC() }
