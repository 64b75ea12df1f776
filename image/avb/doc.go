// Package avb reads and writes Android Verified Boot 2.0 metadata (the formats of AOSP libavb:
// avb_vbmeta_image.h, avb_footer.h, avb_descriptor.h and the five descriptor headers).
//
// It owns the vbmeta image (header, authentication block, auxiliary block, public key, descriptors),
// the AVBf footer at the end of a partition image, and the operations a ROM rebuild needs: set the
// verity/verification flags the way the fastboot client does, add or replace hash and hashtree
// (dm-verity) footers on a modified partition, build and sign vbmeta images with an owner's RSA key,
// and verify a vbmeta image against partition images and an expected key. Output is meant to be
// byte-identical to avbtool 1.3.0 for the same inputs.
package avb
