package dockerapi

import (
	"errors"
	"net/http"

	"github.com/docker/docker/api/types/swarm"

	"github.com/apiary-io/apiary/swarm/api"
)

func (s *Server) swarmInspect(w http.ResponseWriter, r *http.Request) error {
	c, err := s.cfg.Backend.GetCluster(r.Context())
	if err != nil {
		return err
	}
	out := swarm.Swarm{ClusterInfo: clusterInfo(c), JoinTokens: swarm.JoinTokens{Worker: c.JoinTokens.Worker, Manager: c.JoinTokens.Manager}}
	if rot, err := s.cfg.Backend.RootCAStatus(r.Context()); err == nil {
		out.RootRotationInProgress = rot.InProgress
	}
	return writeJSON(w, http.StatusOK, out)
}

// swarmInit and swarmJoin: a node serving this API is always in a
// cluster (apiaryd init/join made it), so both answer as Docker does on a
// node already in a swarm. The request is read first, so bad input is
// reported as such.
func (s *Server) swarmInit(w http.ResponseWriter, r *http.Request) error {
	var req swarm.InitRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	return errAlreadyInSwarm
}

func (s *Server) swarmJoin(w http.ResponseWriter, r *http.Request) error {
	var req swarm.JoinRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	return errAlreadyInSwarm
}

func (s *Server) swarmLeave(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Backend.Leave(r.Context(), queryBool(r, "force")); err != nil {
		return errUnavailable(err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// swarmUpdate maps what the cluster spec holds (task history, heartbeat
// period, certificate lifetime, labels) onto the stored spec, keeping
// ours where Docker's has no field (address pool, gossip), turns autolock
// on or off (EncryptionConfig.AutoLockManagers: Docker's CLI sends the
// spec it read, so a false there is a false), and rotates the join tokens
// and the unlock key asked for. Raft, task-default and external-CA settings
// are not Apiary's to change this way and are ignored, as are values left
// zero (Docker's CLI sends the spec it read).
func (s *Server) swarmUpdate(w http.ResponseWriter, r *http.Request) error {
	var spec swarm.Spec
	if err := readJSON(r, &spec); err != nil {
		return err
	}
	version, err := queryVersion(r, "swarm")
	if err != nil {
		return err
	}
	rotWorker, err := strictBool(r, "rotateWorkerToken")
	if err != nil {
		return err
	}
	rotManager, err := strictBool(r, "rotateManagerToken")
	if err != nil {
		return err
	}
	rotUnlock, err := strictBool(r, "rotateManagerUnlockKey")
	if err != nil {
		return err
	}
	ctx := r.Context()
	c, err := s.cfg.Backend.GetCluster(ctx)
	if err != nil {
		return err
	}
	ours := c.Spec.Copy()
	if spec.Name != "" && spec.Name != ours.Name {
		return errInvalid(errors.New("swarm spec: the cluster's name cannot change"))
	}
	ours.Labels = spec.Labels
	if l := spec.Orchestration.TaskHistoryRetentionLimit; l != nil {
		ours.Orchestration.TaskHistoryRetentionLimit = *l
	}
	ours.Dispatcher.HeartbeatPeriod = spec.Dispatcher.HeartbeatPeriod
	if e := spec.CAConfig.NodeCertExpiry; e != 0 {
		ours.CAConfig.NodeCertExpiry = e
	}
	ours.EncryptionConfig.AutoLockManagers = spec.EncryptionConfig.AutoLockManagers
	if rotUnlock && !ours.EncryptionConfig.AutoLockManagers {
		// Checked before anything is written: the update changes nothing.
		return errInvalid(errors.New("rotateManagerUnlockKey: autolock is off (EncryptionConfig.AutoLockManagers), so there is no unlock key to rotate"))
	}
	if _, err := s.cfg.Backend.UpdateCluster(ctx, version, ours); err != nil {
		return err
	}
	if rotWorker {
		if _, err := s.cfg.Backend.RotateJoinToken(ctx, string(api.NodeRoleWorker)); err != nil {
			return err
		}
	}
	if rotManager {
		if _, err := s.cfg.Backend.RotateJoinToken(ctx, string(api.NodeRoleManager)); err != nil {
			return err
		}
	}
	if rotUnlock {
		// Each manager rewraps (and rotates) its data key as it sees the
		// new key; apiaryctl swarm unlock-key --rotate waits for them.
		if _, err := s.cfg.Backend.RotateUnlockKey(ctx); err != nil {
			return err
		}
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// swarmUnlockKey answers the cluster's unlock key (GetUnlockKey): 404 "no
// unlock key is set" while autolock is off.
func (s *Server) swarmUnlockKey(w http.ResponseWriter, r *http.Request) error {
	key, err := s.cfg.Backend.GetUnlockKey(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, swarm.UnlockKeyResponse{UnlockKey: key})
}

// swarmUnlock gives a locked node its unlock key (Config.Unlock, the
// node's control socket): a wrong key is 400 and the node stays locked. A
// running node is not locked, as Docker answers.
func (s *Server) swarmUnlock(w http.ResponseWriter, r *http.Request) error {
	var req swarm.UnlockRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if s.cfg.Unlock == nil || !s.cfg.Self().Locked {
		return errUnavailable(errors.New("swarm is not locked"))
	}
	if err := s.cfg.Unlock(r.Context(), req.UnlockKey); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
