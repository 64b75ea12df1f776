// Package xiaomi reads Xiaomi fastboot ROMs (the MiFlash packages: `<name>_images_<version>.tgz` holding
// `<name>/images/*.img` and `flash_all.sh`, `flash_all_lock.sh`, `flash_all_except_storage.sh` with
// `.bat` twins, optional `images/anti_version.txt` and `misc.txt`) without extracting them, and turns
// their flash scripts into an ordered plan: product checks, the anti-rollback version and each
// flash/erase/set_active/reboot/lock step. The scripts are parsed, never run.
package xiaomi
