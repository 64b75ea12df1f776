// Package fetch finds community ROM builds published for a handset and downloads the chosen one,
// verified: GitHub releases (through go-github), the LineageOS API and per-device OTA JSON files (the
// LineageOS Updater's and crDroid's shapes, by URL or through GitHub's contents API) list builds with
// their checksums; ListAll keeps what the reachable sources answer and First falls back source by
// source. Download streams into the cache as NAME.part, resumes with HTTP Range (restarting when the
// file changed), retries dropped connections, hashes while streaming and renames only after the checksum
// matches. OTA zips' whole-file signatures (signapk) are verified too. Tokens are never printed or logged.
//
// Retries are our own rather than a request-level retrying client (such as go-retryablehttp): a download
// that drops must continue from the bytes already on disk with Range and If-Range, which a request-level retry cannot do;
// the transport retries only GET and HEAD, on connection errors and 5xx, with doubling back-off. The cross-process
// download lock is github.com/gofrs/flock.
package fetch
