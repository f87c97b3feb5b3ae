/* An allocator for CPython's raw memory domain whose cost does not depend on the heap's
 * layout, for instruction counts: bench/micro_count.py compiles it with the callgrind
 * marks and installs it in a counted child (counting_alloc_install).
 *
 * pymalloc serves objects of up to 512 bytes from its own pools; bigger ones, and raw
 * allocations, go to the raw domain, by default glibc's malloc, which searches, splits and
 * merges chunks as the heap's layout decides. The layout follows from every string the
 * process holds, the tree's own path among them, so two trees of identical code got
 * different counts (the echo server's message by up to 1.2%). Here a block comes from a
 * last-in-first-out free list per power-of-two size class and goes back to it: the same
 * calls cost the same instructions wherever the blocks are. Only an empty list asks the
 * previous allocator; blocks are never given back to it.
 *
 * A block carries a 16-byte header: its class and a tag. Blocks without the tag (made
 * before the install, or too big for a class) belong to the previous allocator and are
 * reallocated and freed by it. The raw domain is called without the GIL: a mutex guards
 * the lists.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct { /* CPython's PyMemAllocatorEx */
    void *ctx;
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
    void *(*realloc)(void *ctx, void *ptr, size_t new_size);
    void (*free)(void *ctx, void *ptr);
} Allocator;

#define PYMEM_DOMAIN_RAW 0
#define HEADER 16
#define MIN_CLASS 5  /* 32-byte blocks */
#define MAX_CLASS 30 /* 1 GiB; bigger blocks are the previous allocator's */
/* Where glibc keeps a chunk's size: no size has its top bits set. */
#define TAG 0xC10CC10CC10CC10CULL

static Allocator previous, counting;
static void *lists[MAX_CLASS + 1];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int size_class(size_t n) {
    if (n > ((size_t)1 << MAX_CLASS) - HEADER)
        return -1;
    int c = MIN_CLASS;
    while (((size_t)1 << c) - HEADER < n)
        c++;
    return c;
}

static int is_ours(void *p) { return ((uint64_t *)p)[-1] == TAG; }

static int class_of(void *p) { return (int)((uint64_t *)p)[-2]; }

static void *alloc(void *ctx, size_t n) {
    (void)ctx;
    int c = size_class(n);
    if (c < 0)
        return previous.malloc(previous.ctx, n);
    pthread_mutex_lock(&lock);
    uint64_t *b = lists[c];
    if (b != NULL)
        lists[c] = *(void **)b;
    pthread_mutex_unlock(&lock);
    if (b == NULL && (b = previous.malloc(previous.ctx, (size_t)1 << c)) == NULL)
        return NULL;
    b[0] = (uint64_t)c;
    b[1] = TAG;
    return (char *)b + HEADER;
}

static void release(void *ctx, void *p) {
    (void)ctx;
    if (p == NULL)
        return;
    if (!is_ours(p)) {
        previous.free(previous.ctx, p);
        return;
    }
    uint64_t *b = (uint64_t *)((char *)p - HEADER);
    int c = (int)b[0];
    b[1] = 0;
    pthread_mutex_lock(&lock);
    *(void **)b = lists[c];
    lists[c] = b;
    pthread_mutex_unlock(&lock);
}

static void *alloc_zeroed(void *ctx, size_t k, size_t n) {
    if (n != 0 && k > SIZE_MAX / n)
        return NULL;
    void *p = alloc(ctx, k * n);
    if (p != NULL)
        memset(p, 0, k * n);
    return p;
}

static void *resize(void *ctx, void *p, size_t n) {
    if (p == NULL)
        return alloc(ctx, n);
    if (!is_ours(p))
        return previous.realloc(previous.ctx, p, n);
    size_t room = ((size_t)1 << class_of(p)) - HEADER;
    if (n <= room)
        return p;
    void *q = alloc(ctx, n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, room);
    release(ctx, p);
    return q;
}

/* Install once per process; get and set are CPython's PyMem_GetAllocator and
 * PyMem_SetAllocator. Returns 1 when installed by this call, 0 if it already was. */
int counting_alloc_install(void (*get)(int, Allocator *), void (*set)(int, Allocator *)) {
    if (counting.malloc != NULL)
        return 0;
    get(PYMEM_DOMAIN_RAW, &previous);
    counting = (Allocator){NULL, alloc, alloc_zeroed, resize, release};
    set(PYMEM_DOMAIN_RAW, &counting);
    return 1;
}
