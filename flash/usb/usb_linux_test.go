//go:build linux

package usb

import (
	"errors"
	"testing"

	"github.com/romforge/romforge/internal/failure"
)

func TestOpenMissingNode(t *testing.T) {
	// Bus 999 does not exist: the node is missing as after an unplug.
	_, err := OpenInfo(DeviceInfo{Serial: "gone", Bus: 999, Address: 999, EndpointIn: 0x81, EndpointOut: 0x01})
	if !errors.Is(err, ErrDisconnected) || !errors.Is(err, failure.ErrIO) {
		t.Fatalf("open of a missing node: %v", err)
	}
}

func TestListUsesSysfsRoot(t *testing.T) {
	old := SysfsRoot
	defer func() { SysfsRoot = old }()
	SysfsRoot = fakeSysfs(t, merge(device("1-1", "18d1", "d00d", "s1", "1", "2"),
		iface("1-1:1.0", "ff", "42", "03", "00", [3]string{"81", "02", "0200"}, [3]string{"01", "02", "0200"})))
	list, err := List()
	if err != nil || len(list) != 1 || list[0].Serial != "s1" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if _, err := Open("other"); !errors.Is(err, ErrNoDevice) {
		t.Fatalf("Open(other): %v", err)
	}
}
