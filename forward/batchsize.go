package forward

import (
	"math/bits"
	"sync/atomic"
)

// BatchBuckets is the number of batch-size buckets a worker keeps: bucket
// i counts the batches of 2^(i-1)+1 to 2^i frames (bucket 0: one frame),
// so the buckets' upper bounds are 1, 2, 4, ..., BatchSize.
const BatchBuckets = 7 // bits.Len(BatchSize-1) + 1 for BatchSize 64

// BatchBucketBound returns the largest batch size bucket i counts.
func BatchBucketBound(i int) int { return 1 << i }

// batchSizes counts a worker's batches by size. The worker adds once per
// batch (one atomic add, next to the frame and batch counters); readers
// load the buckets at any time.
type batchSizes [BatchBuckets]atomic.Uint64

// add counts one batch of n frames (1 <= n <= BatchSize; 0 counts nothing).
func (b *batchSizes) add(n int) {
	if n <= 0 {
		return
	}
	i := bits.Len(uint(n - 1))
	if i >= BatchBuckets {
		i = BatchBuckets - 1
	}
	b[i].Add(1)
}

// load returns the buckets' counts.
func (b *batchSizes) load() (out [BatchBuckets]uint64) {
	for i := range b {
		out[i] = b[i].Load()
	}
	return out
}
