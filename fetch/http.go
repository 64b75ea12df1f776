package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// NewHTTPClient returns a client whose GETs are retried with backoff on 5xx replies and connection
// errors. Go's client drops the Authorization header when a redirect leaves the host, so a token sent to
// the API never reaches asset storage.
func NewHTTPClient(sleep func(context.Context, time.Duration) error) *http.Client {
	if sleep == nil {
		sleep = sleepCtx
	}
	return &http.Client{Transport: &retryTransport{base: http.DefaultTransport, sleep: sleep, tries: 4}}
}

type retryTransport struct {
	base  http.RoundTripper
	sleep func(context.Context, time.Duration) error
	tries int
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return t.base.RoundTrip(req)
	}
	backoff := 250 * time.Millisecond
	var lastErr error
	for i := 0; i < t.tries; i++ {
		if i > 0 {
			if err := t.sleep(req.Context(), backoff); err != nil {
				return nil, err
			}
			backoff *= 2
		}
		resp, err := t.base.RoundTrip(req)
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return nil, err
			}
			lastErr = err
			continue
		}
		if resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented && i < t.tries-1 {
			resp.Body.Close()
			lastErr = fmt.Errorf("HTTP %s", resp.Status)
			continue
		}
		return resp, nil
	}
	return nil, fmt.Errorf("after %d tries: %w", t.tries, lastErr)
}
