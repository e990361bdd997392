package api

import "errors"

// Errors about objects, returned by the store and by every contract that
// reads or writes objects (the control API, say): they belong to the
// object model, so a client tests them with errors.Is without linking the
// store. The store's sentinels of the same names are these.
var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("object does not exist")
	// ErrConflict: an update or delete carried a Meta.Version that is no
	// longer the stored one (someone else wrote the object first).
	ErrConflict = errors.New("version conflict: object was changed by another writer")
	// ErrExist: an object with this ID already exists.
	ErrExist = errors.New("object already exists")
	// ErrNameConflict: another object of the kind already has this name.
	ErrNameConflict = errors.New("name conflicts with an existing object")
)
