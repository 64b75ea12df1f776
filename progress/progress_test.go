package progress

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReaderWriterCount(t *testing.T) {
	var rec Recorder
	task := rec.Task("copy", 11)
	var buf bytes.Buffer
	n, err := io.Copy(Writer(&buf, task), Reader(strings.NewReader("hello world"), task))
	if err != nil || n != 11 {
		t.Fatalf("copy: n=%d err=%v", n, err)
	}
	task.Done(nil)
	task.Done(errors.New("ignored: second Done"))
	// Every byte is counted twice: once read, once written.
	if got := rec.Total("copy"); got != 22 {
		t.Fatalf("total = %d, want 22", got)
	}
	ev := rec.Events()
	if ev[0].Kind != "start" || ev[0].Total != 11 {
		t.Fatalf("first event = %+v", ev[0])
	}
	last := ev[len(ev)-1]
	if last.Kind != "done" || last.Err != nil {
		t.Fatalf("last event = %+v", last)
	}
}

func TestDiscard(t *testing.T) {
	task := OrDiscard(nil).Task("x", 1)
	task.Add(1)
	task.Done(nil)
}
