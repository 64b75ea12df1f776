// Package fastboot speaks the Android fastboot protocol: a Client that sends commands (getvar, download,
// flash, erase, set_active, reboot, oem, flashing, the fastbootd logical-partition commands) and parses
// the replies (OKAY, FAIL, INFO, TEXT, DATA) with per-command timeouts and context cancellation, and the
// network transports at both ends — TCP (FB01 handshake, 8-byte length frames) and UDP (the AOSP packet
// format with sequence numbers and retransmission) — so that the emulator in flash/emulator can serve
// the very framing the AOSP client and our Client speak. USB lives in flash/usb; Dial picks the
// transport from a serial string the way `fastboot -s` does.
package fastboot
