// Package fetch finds community ROM builds published for a handset and downloads the chosen one,
// verified: GitHub releases (through go-github) and LineageOS-updater-shaped APIs list builds with their
// checksums; Download streams into the cache as NAME.part, resumes with HTTP Range (restarting when the
// file changed), retries dropped connections, hashes while streaming and renames only after the checksum
// matches. OTA zips' whole-file signatures (signapk) are verified too. Tokens are never printed or logged.
package fetch
