//go:build !unix

package hub

import "context"

// lockBlob is a no-op where flock is not available.
func lockBlob(ctx context.Context, cacheDir, repoFolder, etag string) (unlock func(), err error) {
	return func() {}, nil
}
