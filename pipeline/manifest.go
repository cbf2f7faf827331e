package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// StageManifest is written last by a stage: the key of its inputs and
// configuration vouches for the outputs written before it.
type StageManifest struct {
	Stage    string    `json:"stage"`
	Key      string    `json:"key"`
	Finished time.Time `json:"finished"`
	// Info is what the stage reports about itself (timings, losses).
	Info json.RawMessage `json:"info,omitempty"`
}

// stageFile is where a stage's manifest lives.
func stageFile(ws, stage string) string {
	return filepath.Join(ws, ".stages", stage+".json")
}

// hashKey hashes parts as JSON into a hex key.
func hashKey(parts ...any) (string, error) {
	h := sha256.New()
	enc := json.NewEncoder(h)
	for _, p := range parts {
		if err := enc.Encode(p); err != nil {
			return "", fmt.Errorf("hash inputs: %w", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// stageDone reports whether the stage's manifest holds key.
func stageDone(ws, stage, key string) (bool, error) {
	data, err := os.ReadFile(stageFile(ws, stage))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var m StageManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return false, nil // a torn or foreign file: redo the stage
	}
	return m.Key == key, nil
}

// markDone writes the stage's manifest.
func markDone(ws, stage, key string, info any) error {
	m := StageManifest{Stage: stage, Key: key, Finished: time.Now().UTC()}
	if info != nil {
		b, err := json.Marshal(info)
		if err != nil {
			return fmt.Errorf("stage %s: %w", stage, err)
		}
		m.Info = b
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(stageFile(ws, stage), data)
}

// clearStage removes the stage's manifest before its outputs are rewritten,
// so that a crash never leaves a manifest vouching for mixed outputs.
func clearStage(ws, stage string) error {
	err := os.Remove(stageFile(ws, stage))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// writeFileAtomic writes data to path through a synced temporary file in the
// same directory and a rename.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// readStageInfo decodes the Info of a stage's manifest into v; false when
// there is none.
func readStageInfo(ws, stage string, v any) bool {
	data, err := os.ReadFile(stageFile(ws, stage))
	if err != nil {
		return false
	}
	var m StageManifest
	if json.Unmarshal(data, &m) != nil || len(m.Info) == 0 {
		return false
	}
	return json.Unmarshal(m.Info, v) == nil
}
