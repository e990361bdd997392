package swarm

// SetRekeyHook sets what is called after each step of a data key
// rotation (nil: nothing); an error stops the rotation there, as a crash
// would. Tests of a crash between the steps use it.
func SetRekeyHook(f func(nodeID, step string) error) { rekeyHook = f }
