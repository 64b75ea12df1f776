package usb

import "unsafe"

// usbfs ioctl numbers, computed as <linux/usbdevice_fs.h> does with _IOC (the asm-generic layout used
// by x86, arm and arm64; mips, powerpc and sparc encode directions differently and are not supported).
const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2
)

func ioc(dir, typ, nr, size uintptr) uintptr { return dir<<30 | size<<16 | typ<<8 | nr }

// bulkTransfer is struct usbdevfs_bulktransfer.
type bulkTransfer struct {
	Ep      uint32
	Len     uint32
	Timeout uint32 // milliseconds, 0 = none
	Data    unsafe.Pointer
}

// usbIoctl is struct usbdevfs_ioctl.
type usbIoctl struct {
	Ifno      int32
	IoctlCode int32
	Data      unsafe.Pointer
}

var (
	usbdevfsBulk             = ioc(iocRead|iocWrite, 'U', 2, unsafe.Sizeof(bulkTransfer{}))
	usbdevfsClaimInterface   = ioc(iocRead, 'U', 15, 4)
	usbdevfsReleaseInterface = ioc(iocRead, 'U', 16, 4)
	usbdevfsIoctl            = ioc(iocRead|iocWrite, 'U', 18, unsafe.Sizeof(usbIoctl{}))
	usbdevfsClearHalt        = ioc(iocRead, 'U', 21, 4)
	usbdevfsDisconnect       = ioc(iocNone, 'U', 22, 0)
)

var sizeofPtr = unsafe.Sizeof(uintptr(0))
