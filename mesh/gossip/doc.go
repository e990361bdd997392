// Package gossip is the routing mesh's gossip among all nodes (design §8):
// hashicorp/memberlist for membership and failure detection, encrypted with
// its AES-GCM keyring (keys rotated at runtime with SetKeys), carrying
// replicated key/value tables grouped by network, in the manner of Docker's
// NetworkDB.
//
// What it keeps from NetworkDB: tables per network; every entry versioned by
// its writer's clock, so copies arriving in any order converge to the same
// state on every node; deletions as tombstones kept for a reap period (but
// see below);
// changes gossiped on by every node that learns them; full state exchanged
// on join and periodically (memberlist's push/pull); a node's entries removed
// everywhere when gossip declares it dead or it leaves.
//
// What it does differently, because Apiary trusts certificates rather than
// the shared key (Swarm trusts any key holder):
//   - An entry belongs to the node that wrote it, and keys are scoped by
//     owner: no node can overwrite or delete another's entry.
//   - Every entry is signed with its owner's node certificate key; every
//     receiver checks the signature, the chain (Verifier, by default against
//     the cluster CA pool), that the certificate names the owner, and the
//     caller's Admit hook. Anything else is dropped and counted (Stats).
//   - Certificates do not travel with entries: an entry names its owner's
//     certificate by digest, and chains travel once, gossiped when a node
//     starts or joins, in push/pull states, or on request to their owner.
//   - Versions are (epoch, counter) with the epoch the owner's start time,
//     so a restarted node's entries supersede its previous run's.
//   - Tombstones are bounded by count as well as by time: a node churning
//     short-lived tasks deletes faster than the reap period frees, so each
//     node compacts its own oldest tombstones behind a floor, a version at
//     or below which it holds nothing live (it re-publishes its long-lived
//     entries above it first). The floor travels signed in every entry and
//     in push/pull, and every member refuses entries at or below it: a late
//     copy of a compacted entry cannot come back, and a member holds at
//     most MaxEntriesPerNode live entries and MaxTombstonesPerNode
//     tombstones of any node, whatever its churn (state has the argument).
//   - Everything read from the wire is bounded (see the Max constants).
//
// Table is the interface the DNS server and balancer use; Member implements
// it over the network, MemoryHub in memory for their tests.
package gossip
