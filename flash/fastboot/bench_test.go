package fastboot

import (
	"bytes"
	"context"
	"testing"
)

// BenchmarkDownloadTCP measures the client's download path over loopback TCP into a discarding device.
func BenchmarkDownloadTCP(b *testing.B) {
	data := randBytes(64<<20, 5)
	l, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go acceptOne(l, testDevice(nil))
	tr, err := DialTCP(context.Background(), l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	c := NewClient(tr)
	defer c.Close()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := c.Download(context.Background(), bytes.NewReader(data), int64(len(data)), nil); err != nil {
			b.Fatal(err)
		}
	}
}
