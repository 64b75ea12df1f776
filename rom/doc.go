// Package rom says what a ROM input is — an A/B payload zip, a block or file-based OTA zip, a fastboot
// update zip, a Xiaomi fastboot ROM (tgz or directory) or a bare partition image — and reads the small
// text files ROMs carry (META-INF/com/android/metadata, android-info.txt). For file-based OTAs
// (CyanogenMod-era, e.g. the Redmi 1S) FileOTATree turns the zip's system/ entries plus the ownership,
// modes, capabilities, labels and symlinks its updater-script sets into a tree.Tree for the ext4 writer.
//
// Nothing found inside a ROM is ever executed: scripts are parsed (rom/edify, rom/xiaomi) and only
// literal values are used. Reads are bounded: detection looks at headers and small entries only.
package rom
