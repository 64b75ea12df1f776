//go:build windows

package usb

import (
	"errors"
	"fmt"
	"sort"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/romforge/romforge/internal/failure"
)

// Native USB on Windows through WinUSB (winusb.dll) and the configuration manager (cfgmgr32, what
// SetupAPI is built on), without cgo. Devices are found by device interface class: the Google/Android
// USB driver's interface GUID and the one WinUSB registers for devices that declare it through Microsoft
// OS descriptors; each candidate is opened and kept only when one of its interfaces is ff/42/03 with a
// bulk IN and OUT pipe.

// InterfaceGUIDs are the device interface classes searched for fastboot devices.
var InterfaceGUIDs = []windows.GUID{
	// ANDROID_USB_CLASS_ID of the Google USB Driver (android_winusb.inf) and OEM copies of it.
	{Data1: 0xf72fe0d4, Data2: 0xcbcb, Data3: 0x407d, Data4: [8]byte{0x88, 0x14, 0x9e, 0xd6, 0x73, 0xd0, 0xdd, 0x6b}},
	// GUID_DEVINTERFACE_WINUSB-style default used by WinUSB devices with MS OS 2.0 descriptors.
	{Data1: 0xdee824ef, Data2: 0x729b, Data3: 0x4a0e, Data4: [8]byte{0x9c, 0x14, 0xb7, 0x11, 0x7d, 0x33, 0xa8, 0x17}},
}

var (
	winusb                     = windows.NewLazySystemDLL("winusb.dll")
	procInitialize             = winusb.NewProc("WinUsb_Initialize")
	procFree                   = winusb.NewProc("WinUsb_Free")
	procQueryInterfaceSettings = winusb.NewProc("WinUsb_QueryInterfaceSettings")
	procQueryPipe              = winusb.NewProc("WinUsb_QueryPipe")
	procGetDescriptor          = winusb.NewProc("WinUsb_GetDescriptor")
	procReadPipe               = winusb.NewProc("WinUsb_ReadPipe")
	procWritePipe              = winusb.NewProc("WinUsb_WritePipe")
	procAbortPipe              = winusb.NewProc("WinUsb_AbortPipe")
	procResetPipe              = winusb.NewProc("WinUsb_ResetPipe")
)

// pipeInformation is WINUSB_PIPE_INFORMATION.
type pipeInformation struct {
	PipeType          int32 // USBD_PIPE_TYPE: 2 = bulk
	PipeID            uint8
	MaximumPacketSize uint16
	Interval          uint8
}

// winDev is one opened device: its file handle and WinUSB interface handle.
type winDev struct {
	file windows.Handle
	wh   uintptr
	path string
}

func call(p *windows.LazyProc, args ...uintptr) error {
	if err := p.Find(); err != nil {
		return failure.Kinded(failure.ErrIO, fmt.Errorf("usb: winusb.dll: %w", err))
	}
	r, _, err := p.Call(args...)
	if r != 0 {
		return nil
	}
	if err == nil || err == windows.ERROR_SUCCESS {
		err = windows.ERROR_GEN_FAILURE
	}
	return err
}

func openWin(path string) (*winDev, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, err
	}
	h, err := windows.CreateFile(p, windows.GENERIC_READ|windows.GENERIC_WRITE, windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE,
		nil, windows.OPEN_EXISTING, windows.FILE_ATTRIBUTE_NORMAL|windows.FILE_FLAG_OVERLAPPED, 0)
	if err != nil {
		return nil, err
	}
	d := &winDev{file: h, path: path}
	if err := call(procInitialize, uintptr(h), uintptr(unsafe.Pointer(&d.wh))); err != nil {
		windows.CloseHandle(h)
		return nil, err
	}
	return d, nil
}

func (d *winDev) descriptor(typ, index uint8, lang uint16, buf []byte) (int, error) {
	var n uint32
	err := call(procGetDescriptor, d.wh, uintptr(typ), uintptr(index), uintptr(lang), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(unsafe.Pointer(&n)))
	return int(min(n, uint32(len(buf)))), err
}

func (d *winDev) str(index uint8) string {
	if index == 0 {
		return ""
	}
	buf := make([]byte, 255)
	n, err := d.descriptor(3, index, 0x0409, buf)
	if err != nil {
		return ""
	}
	return parseStringDescriptor(buf[:n])
}

// describe reads the device's descriptors and returns its fastboot interface, if it has one.
func (d *winDev) describe() (DeviceInfo, bool) {
	var iface [9]byte
	if call(procQueryInterfaceSettings, d.wh, 0, uintptr(unsafe.Pointer(&iface[0]))) != nil {
		return DeviceInfo{}, false
	}
	var eps []endpoint
	for i := 0; i < int(iface[4]); i++ {
		var pi pipeInformation
		if call(procQueryPipe, d.wh, 0, uintptr(i), uintptr(unsafe.Pointer(&pi))) != nil {
			continue
		}
		eps = append(eps, endpoint{Address: pi.PipeID, Bulk: pi.PipeType == 2, MaxPacket: pi.MaximumPacketSize})
	}
	info, ok := fastbootInterface(iface[:], eps)
	if !ok {
		return DeviceInfo{}, false
	}
	buf := make([]byte, 18)
	if n, err := d.descriptor(1, 0, 0, buf); err == nil {
		if dd, ok := parseDeviceDescriptor(buf[:n]); ok {
			info.VendorID, info.ProductID = dd.VendorID, dd.ProductID
			info.Serial = d.str(dd.SerialNumber)
			info.Manufacturer = d.str(dd.Manufacturer)
			info.Product = d.str(dd.Product)
		}
	}
	info.SysfsName = d.path // the device interface path identifies it on Windows
	return info, true
}

func (d *winDev) closeHandles() error {
	call(procFree, d.wh)
	return windows.CloseHandle(d.file)
}

// classify turns a Win32 error of a pipe transfer into pipeOps' sentinels.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, windows.ERROR_OPERATION_ABORTED), errors.Is(err, windows.ERROR_SEM_TIMEOUT):
		return errPipeAborted
	case errors.Is(err, windows.ERROR_GEN_FAILURE), errors.Is(err, windows.ERROR_CRC):
		// What WinUSB reports for a STALL PID.
		return errPipeStalled
	case errors.Is(err, windows.ERROR_DEVICE_NOT_CONNECTED), errors.Is(err, windows.ERROR_BAD_COMMAND),
		errors.Is(err, windows.ERROR_FILE_NOT_FOUND), errors.Is(err, windows.ERROR_INVALID_HANDLE),
		errors.Is(err, windows.ERROR_NO_SUCH_DEVICE):
		return errPipeGone
	}
	return err
}

func (d *winDev) readPipe(pipe uint8, p []byte) (int, error) {
	var n uint32
	err := call(procReadPipe, d.wh, uintptr(pipe), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), uintptr(unsafe.Pointer(&n)), 0)
	return int(n), classify(err)
}

func (d *winDev) writePipe(pipe uint8, p []byte) (int, error) {
	var n uint32
	var ptr uintptr
	if len(p) > 0 {
		ptr = uintptr(unsafe.Pointer(&p[0]))
	}
	err := call(procWritePipe, d.wh, uintptr(pipe), ptr, uintptr(len(p)), uintptr(unsafe.Pointer(&n)), 0)
	return int(n), classify(err)
}

func (d *winDev) abortPipe(pipe uint8) error { return call(procAbortPipe, d.wh, uintptr(pipe)) }
func (d *winDev) resetPipe(pipe uint8) error { return call(procResetPipe, d.wh, uintptr(pipe)) }
func (d *winDev) close() error               { return d.closeHandles() }

// interfacePaths lists the present device interfaces of the fastboot classes.
func interfacePaths() []string {
	seen := map[string]bool{}
	var out []string
	for i := range InterfaceGUIDs {
		list, err := windows.CM_Get_Device_Interface_List("", &InterfaceGUIDs[i], windows.CM_GET_DEVICE_INTERFACE_LIST_PRESENT)
		if err != nil {
			continue
		}
		for _, p := range list {
			if p != "" && !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	sort.Strings(out)
	return out
}

// List returns the fastboot devices WinUSB can reach. A device another program has open cannot be
// opened (WinUSB is exclusive) and is left out.
func List() ([]DeviceInfo, error) {
	if err := winusb.Load(); err != nil {
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("usb: winusb.dll: %w", err))
	}
	var out []DeviceInfo
	for _, p := range interfacePaths() {
		d, err := openWin(p)
		if err != nil {
			continue
		}
		if info, ok := d.describe(); ok {
			out = append(out, info)
		}
		d.closeHandles()
	}
	return out, nil
}

// MemoryMB is a Linux usbfs setting.
func MemoryMB() (int, error) { return 0, ErrUnsupported }

// Device is an open fastboot interface (a fastboot transport).
type Device struct {
	Info DeviceInfo
	*pipeDevice
}

// Open opens the fastboot device with this serial ("" → the only one).
func Open(serial string) (*Device, error) {
	list, err := List()
	if err != nil {
		return nil, err
	}
	info, err := pick(list, serial)
	if err != nil {
		return nil, err
	}
	return OpenInfo(info)
}

// OpenInfo opens a device found by List.
func OpenInfo(info DeviceInfo) (*Device, error) {
	d, err := openWin(info.SysfsName)
	if err != nil {
		if errors.Is(err, windows.ERROR_ACCESS_DENIED) || errors.Is(err, windows.ERROR_SHARING_VIOLATION) {
			return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("usb: %s is in use by another program (another fastboot, an adb server or a second romforge): let it finish or stop it, then retry: %w", info.Serial, err))
		}
		if errors.Is(err, windows.ERROR_FILE_NOT_FOUND) || errors.Is(err, windows.ERROR_NO_SUCH_DEVICE) {
			return nil, fmt.Errorf("usb: %s: %w", info.Serial, ErrDisconnected)
		}
		return nil, failure.Kinded(failure.ErrIO, fmt.Errorf("usb: opening %s: %w (the phone's fastboot interface needs a WinUSB driver: the Google USB Driver, or WinUSB assigned with Zadig)", info.Serial, err))
	}
	return &Device{Info: info, pipeDevice: newPipeDevice(info, d)}, nil
}
