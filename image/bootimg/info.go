package bootimg

// Info is a JSON-able summary of an image for `romforge inspect`: every header field under its
// bootimg.h name, the sections with their offsets, and what follows them.
type Info struct {
	Header   *Header   `json:"header"`
	Sections []Section `json:"sections"`
	// TailSize counts the bytes after the last section's padding; AVBFooter says they end in an AVB
	// footer (inspect the file as an AVB partition for its descriptors).
	TailSize  int64    `json:"tail_size"`
	AVBFooter bool     `json:"avb_footer"`
	Notes     []string `json:"notes,omitempty"`
}

// Info summarises the image.
func (im *Image) Info() Info {
	secs := im.Sections
	if secs == nil {
		secs = []Section{}
	}
	return Info{
		Header:    im.Header,
		Sections:  secs,
		TailSize:  max(0, im.size-im.End),
		AVBFooter: im.HasAVBFooter(),
		Notes:     im.Notes,
	}
}
