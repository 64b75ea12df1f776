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

// urb is struct usbdevfs_urb (without the iso frame descriptors bulk transfers do not use). Go lays it
// out as C does on both 32- and 64-bit targets: the pointers fall on their natural alignment.
type urb struct {
	Type         uint8
	Endpoint     uint8
	_            [2]byte
	Status       int32 // 0 or a negative errno once reaped
	Flags        uint32
	Buffer       unsafe.Pointer
	BufferLength int32
	ActualLength int32
	StartFrame   int32
	StreamID     int32
	ErrorCount   int32
	Signr        uint32
	UserContext  unsafe.Pointer
}

const urbTypeBulk = 3 // USBDEVFS_URB_TYPE_BULK

// disconnectClaim is struct usbdevfs_disconnect_claim.
type disconnectClaim struct {
	Interface uint32
	Flags     uint32
	Driver    [256]byte
}

// USBDEVFS_DISCONNECT_CLAIM_EXCEPT_DRIVER: detach whatever driver holds the interface unless it is the
// named one.
const disconnectClaimExceptDriver = 0x02

// connectInfo is struct usbdevfs_connectinfo.
type connectInfo struct {
	Devnum uint32
	Slow   uint8
	_      [3]byte
}

// getDriver is struct usbdevfs_getdriver.
type getDriver struct {
	Interface uint32
	Driver    [256]byte
}

var (
	usbdevfsGetDriver        = ioc(iocWrite, 'U', 8, unsafe.Sizeof(getDriver{}))
	usbdevfsConnectInfo      = ioc(iocWrite, 'U', 17, unsafe.Sizeof(connectInfo{}))
	usbdevfsSubmitURB        = ioc(iocRead, 'U', 10, unsafe.Sizeof(urb{}))
	usbdevfsDiscardURB       = ioc(iocNone, 'U', 11, 0)
	usbdevfsReapURBNDelay    = ioc(iocWrite, 'U', 13, unsafe.Sizeof(uintptr(0)))
	usbdevfsBulk             = ioc(iocRead|iocWrite, 'U', 2, unsafe.Sizeof(bulkTransfer{}))
	usbdevfsClaimInterface   = ioc(iocRead, 'U', 15, 4)
	usbdevfsReleaseInterface = ioc(iocRead, 'U', 16, 4)
	usbdevfsIoctl            = ioc(iocRead|iocWrite, 'U', 18, unsafe.Sizeof(usbIoctl{}))
	usbdevfsClearHalt        = ioc(iocRead, 'U', 21, 4)
	usbdevfsDisconnect       = ioc(iocNone, 'U', 22, 0)
	usbdevfsDisconnectClaim  = ioc(iocRead, 'U', 27, unsafe.Sizeof(disconnectClaim{}))
)

var sizeofPtr = unsafe.Sizeof(uintptr(0))
