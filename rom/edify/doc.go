// Package edify parses the edify language of recovery updater-scripts (META-INF/com/google/android/
// updater-script) into a syntax tree, and extracts what a file-based OTA needs to rebuild its system
// image: ownership, modes, capabilities and SELinux labels (set_perm, set_perm_recursive, set_metadata,
// set_metadata_recursive), symlinks, and the devices the package asserts it is for.
//
// Scripts are never executed: only literal arguments are interpreted, anything computed at run time is
// reported as a warning.
package edify
