// Package lz4block is an LZ4 block codec shaped for EROFS: a decoder that stops once its output is full
// (EROFS extents without 0padding are decoded that way), and compressors that fill a fixed output budget
// ("compress as much input as fits into N bytes"), which EROFS's fixed-output-size pclusters need and
// general-purpose LZ4 libraries do not offer. Level 0 is a greedy single-probe matcher (like lz4's fast
// mode); levels 1-12 search hash chains of 1<<(level-1) candidates with one-step lazy matching (lz4hc-like).
package lz4block
