/*
 * wakeup.pml -- rondo's wake-up protocol (announcements + asymmetric fence) under x86-TSO,
 * for the SPIN model checker (6.5).
 *
 * verify/README.md describes what is modelled, how TSO is modelled, the mapping from model
 * steps to the protocol, the properties and the results; verify/run.sh runs every check.
 *
 * Switches (spin -DNAME or -DNAME=value; the defaults give the "base" configuration):
 *   W1=0|1              E's wait W1: min(A, B) >= 1, with the stage processes A and B   (1)
 *   W2=0|1              E's wait W2: G >= 1, with the terminal stage process G          (1)
 *   A_ADV=1|2           how many times stage A advances (to 1, then 2)                  (1)
 *   NPUB=0|1|2          publisher processes: notifiers that scan with v = 1 (and 2)     (0)
 *   CANCEL=0|1          the stop-token canceller of W1                                  (0)
 *   CLOSE=0|1           the closer (shutdown)                                           (0)
 *   SPURIOUS=n          spurious / timeout returns E's sleep may take                   (1)
 *   MB_FIXED_ORDER      membarrier drains the other CPUs in one fixed order (default: any order)
 *   BUSYWAIT            the spinlock and the pins == 0 wait are busy loops, not blocking guards
 *                       (for the weak-fairness liveness run: starving them needs unfairness)
 *   FINE_GRAIN          undo the step merging (Lipton reductions) of the wakers and of E's pin
 *                       wait, to cross-check that the reductions do not change any verdict
 *   FALLBACK_FENCES     membarrier refused: E runs an ordinary full fence instead, and every
 *                       notifier runs a full fence between its store and its load of min_target
 * Witnesses (an assertion that must fail: the situation is reachable, the check is not vacuous):
 *   WITNESS_DOORBELL    a notifier's ring ends a real sleep of E
 *   WITNESS_CALLOFF_PINNED
 *                       E calls off its sleep while a waker that unlinked its node holds a pin
 * Broken variants (each must make the verifier report an error):
 *   BROKEN_NO_FENCE     E goes from its announcements straight to the re-check: no fence at all
 *   BROKEN_NO_MEMBARRIER  E runs its own full fence but no membarrier; notifiers stay fence-free
 *   BROKEN_NO_RECHECK   E sleeps right after the heavy fence without re-polling
 *   BROKEN_CALLOFF_NO_PINWAIT
 *                       the call-off path does not wait for pins == 0 (the protocol as first
 *                       specified): E may exit, and be destroyed, while a waker holds a pin
 *   EXIT_WAITS_PINS     the alternative fix for that: E's teardown waits for pins == 0
 */

#ifndef W1
#define W1 1
#endif
#ifndef W2
#define W2 1
#endif
#ifndef A_ADV
#define A_ADV 1
#endif
#ifndef NPUB
#define NPUB 0
#endif
#ifndef CANCEL
#define CANCEL 0
#endif
#ifndef CLOSE
#define CLOSE 0
#endif
#ifndef SPURIOUS
#define SPURIOUS 1
#endif

#define T1   1          /* W1's target: min(A, B) >= T1   */
#define T2   1          /* W2's target: G >= T2           */
#define INF  3          /* min_target when nothing is linked */

/* ---- words written with plain stores (through the store buffers) ---- */
#define A_       0      /* stage A's position              */
#define B_       1      /* stage B's position              */
#define G_       2      /* gating sequence (terminal stage) */
#define CLOSED_  3      /* closed flag                     */
#define MINT_    4      /* registry.min_target             */
#define LINK0_   5      /* linked[W1]                      */
#define LINK1_   6      /* linked[W2]                      */
#define LOCK_    7      /* registry spinlock word          */
#define SLEEP_   8      /* E.sleeping                      */
#define NADDR    9      /* (as an address: "no store")     */

/* ---- threads that own a store buffer ---- */
#define TE   0          /* executor E   */
#define TA   1          /* stage A      */
#define TB   2          /* stage B      */
#define TG   3          /* terminal stage G */
#define TX   4          /* closer X     */
#define TP1  5          /* publisher P1 */
#define TP2  6          /* publisher P2 */
#define NT   7
#define CAP  6          /* store buffer capacity (an assertion checks it is never exceeded) */

byte mem[NADDR];

/* store buffers: FIFO of (address, value) per thread; slot 0 is the oldest; free slots are 0 */
byte baddr[NT * CAP];
byte bval[NT * CAP];
byte blen[NT];

/* words only changed by locked RMWs or syscalls: always in memory, no buffer involved */
byte bell;              /* E's eventfd doorbell counter */
byte pins;              /* E's sleeper.pins             */
bool cancelled0;        /* W1's stop token (stop_requested) */
byte cbst;              /* W1's stop_callback: 0 registered, 1 running, 2 finished/deregistered */

/* ghost state for the properties */
byte resume[2];         /* times each wait's coroutine was resumed */
bool freed[2];          /* each wait's frame (and its announcement node) freed */
bool e_exited;          /* E left its loop: every wait resumed */
bool e_freed;           /* E (its sleeping, bell, pins) destroyed */

hidden byte hi;         /* scratch, used only inside one d_step and reset there */
hidden byte hk;

/* ------------------------------------------------------------ trace annotations --- */
/* printf only runs when a trail is replayed (spin -t), never during verification */

inline PRT(p) {
  if
  :: p == TE -> printf("E")
  :: p == TA -> printf("A")
  :: p == TB -> printf("B")
  :: p == TG -> printf("G")
  :: p == TX -> printf("closer")
  :: p == TP1 -> printf("P1")
  :: p == TP2 -> printf("P2")
  fi
}

inline PRA(a) {
  if
  :: a == A_ -> printf("posA")
  :: a == B_ -> printf("posB")
  :: a == G_ -> printf("posG")
  :: a == CLOSED_ -> printf("closed")
  :: a == MINT_ -> printf("min_target")
  :: a == LINK0_ -> printf("linked[W1]")
  :: a == LINK1_ -> printf("linked[W2]")
  :: a == LOCK_ -> printf("lock")
  :: a == SLEEP_ -> printf("sleeping")
  fi
}

/* ------------------------------------------------------------------ TSO primitives --- */

/* plain store: append to the own buffer (invisible to every other thread until flushed) */
inline STORE(p, a, v) {
  assert(blen[p] < CAP);
  baddr[p * CAP + blen[p]] = a;
  bval[p * CAP + blen[p]] = v;
  blen[p]++;
  printf("@@ "); PRT(p); printf(" store "); PRA(a); printf(" := %d (buffered)\n", v)
}

/* plain load: the newest own buffered value for a, else memory */
inline LOAD(p, a, r) {
  r = mem[a];
  hi = 0;
  do
  :: hi < blen[p] ->
       if
       :: baddr[p * CAP + hi] == a -> r = bval[p * CAP + hi]
       :: else -> skip
       fi;
       hi++
  :: else -> break
  od;
  hi = 0
}

/* a load that another thread's store can race with: trace it */
inline VLOAD(p, a, r) {
  LOAD(p, a, r);
  printf("@@ "); PRT(p); printf(" load "); PRA(a); printf(" -> %d\n", r)
}

/* write the oldest entry of p's buffer to memory */
inline FLUSH1(p) {
  mem[baddr[p * CAP]] = bval[p * CAP];
  printf("@@   (flush "); PRT(p); printf(": "); PRA(baddr[p * CAP]);
  printf(" = %d reaches memory)\n", bval[p * CAP]);
  hk = 0;
  do
  :: hk + 1 < blen[p] ->
       baddr[p * CAP + hk] = baddr[p * CAP + hk + 1];
       bval[p * CAP + hk] = bval[p * CAP + hk + 1];
       hk++
  :: else -> break
  od;
  baddr[p * CAP + blen[p] - 1] = 0;
  bval[p * CAP + blen[p] - 1] = 0;
  blen[p]--;
  hk = 0
}

/* a full fence, or the drain that a locked RMW or a syscall implies */
inline FLUSHALL(p) {
  do
  :: blen[p] > 0 -> FLUSH1(p)
  :: else -> break
  od;
  skip
}

/* the memory system: one process per store buffer, flushes the oldest entry at any moment */
proctype Flusher(byte p) {
end:
  do
  :: d_step { blen[p] > 0 -> FLUSH1(p) }
  od
}

/* --------------------------------------------------------------------- registry --- */

/* The registry spinlock: acquiring it is a locked RMW (xchg), which drains the own buffer and
 * is atomic on memory; releasing it is a plain store into the buffer.
 * Reduction (Lipton): each critical section is one d_step from the acquisition on, as far as
 * it only does steps that no other thread can observe or influence while the lock is held:
 *   - appends to the own store buffer (left movers: invisible until flushed, and a flush only
 *     ever takes an older entry),
 *   - loads of linked[] and min_target (only lock holders write them, and every earlier
 *     holder's stores reached memory before its unlock did: the buffers are FIFO),
 *   - pins++ (E reads pins only after taking the lock itself).
 * Loads of positions, closed and cancelled under the lock stay separate steps. */
#ifdef BUSYWAIT
#define LOCK_SPIN  do :: mem[LOCK_] == 0 -> break :: else -> skip od; skip;
#define WAIT_UNPINNED  do :: pins == 0 -> break :: else -> skip od
#define WAIT_UNPINNED_THEN(x)  do :: d_step { pins == 0 -> x }; break :: else -> skip od
#else
#define LOCK_SPIN
#define WAIT_UNPINNED  pins == 0
#define WAIT_UNPINNED_THEN(x)  d_step { pins == 0 -> x }
#endif
#ifdef FINE_GRAIN
#undef WAIT_UNPINNED_THEN
#define WAIT_UNPINNED_THEN(x)  WAIT_UNPINNED; x
#endif
/* (After E withdrew its announcements nothing can pin it again, so pins == 0 is stable there
 * and E's next load, of bell, can be part of the same step.) */
#define LOCK_ACQ(p)  mem[LOCK_] == 0 -> FLUSHALL(p); mem[LOCK_] = 1

/* recompute min_target from the own view of linked[], append it, append the unlock */
inline RECOMPUTE_AND_UNLOCK(p, t) {
  t = INF;
  LOAD(p, LINK0_, hk);
  if :: hk && T1 < t -> t = T1 :: else -> skip fi;
  LOAD(p, LINK1_, hk);
  if :: hk && T2 < t -> t = T2 :: else -> skip fi;
  hk = 0;
  STORE(p, MINT_, t);
  STORE(p, LOCK_, 0);
  t = 0
}

/* --------------------------------------------------------------------- readiness --- */

/* E's ready(W1) = min(A, B) >= T1 || closed || cancelled: plain loads, one step each */
inline READY0(p, r, t) {
  d_step { VLOAD(p, A_, t); r = (t >= T1); t = 0 };
  if
  :: r -> d_step { VLOAD(p, B_, t); r = (t >= T1); t = 0 }
  :: else -> skip
  fi;
#if CLOSE
  if
  :: !r -> d_step { VLOAD(p, CLOSED_, t); r = (t != 0); t = 0 }
  :: else -> skip
  fi;
#endif
#if CANCEL
  if
  :: !r -> d_step { r = cancelled0; printf("@@ E load cancelled[W1] -> %d\n", r) }
  :: else -> skip
  fi;
#endif
  skip
}

/* E's ready(W2) = G >= T2 || closed */
inline READY1(p, r, t) {
  d_step { VLOAD(p, G_, t); r = (t >= T2); t = 0 };
#if CLOSE
  if
  :: !r -> d_step { VLOAD(p, CLOSED_, t); r = (t != 0); t = 0 }
  :: else -> skip
  fi;
#endif
  skip
}

/* The same, evaluated by a notifier under the lock. Its own position needs no load step: it
 * stored it, the lock drained its buffer and nobody else writes it, so the value is v. */
inline NREADY0(me, v, r, t) {
  if
  :: me == TA -> r = (v >= T1)
  :: else -> d_step { VLOAD(me, A_, t); r = (t >= T1); t = 0 }
  fi;
  if
  :: r && me == TB -> r = (v >= T1)
  :: r && me != TB -> d_step { VLOAD(me, B_, t); r = (t >= T1); t = 0 }
  :: else -> skip
  fi;
#if CLOSE
  if
  :: !r -> d_step { VLOAD(me, CLOSED_, t); r = (t != 0); t = 0 }
  :: else -> skip
  fi;
#endif
#if CANCEL
  if
  :: !r -> r = cancelled0
  :: else -> skip
  fi;
#endif
  skip
}

inline NREADY1(me, v, r, t) {
  if
  :: me == TG -> r = (v >= T2)
  :: else -> d_step { VLOAD(me, G_, t); r = (t >= T2); t = 0 }
  fi;
#if CLOSE
  if
  :: !r -> d_step { VLOAD(me, CLOSED_, t); r = (t != 0); t = 0 }
  :: else -> skip
  fi;
#endif
  skip
}

/* ---------------------------------------------------------------------- executor --- */

/* announce wait w (one lock section per wait): link it, min_target = min(min_target, target) */
inline ANNOUNCE(w, tgt, t) {
  LOCK_SPIN
  d_step {
    LOCK_ACQ(TE);
    printf("@@ E locks, announces W%d\n", w + 1);
    STORE(TE, LINK0_ + w, 1);
    LOAD(TE, MINT_, t);
    if :: tgt < t -> t = tgt :: else -> skip fi;
    STORE(TE, MINT_, t);
    STORE(TE, LOCK_, 0);
    t = 0
  }
}

/* withdraw every announcement still linked (one that is not was unlinked by a waker, which
 * pinned E), recompute min_target, unlock; on the call-off path also sleeping := 0 */
inline WITHDRAW(t, also_clear_sleeping) {
  LOCK_SPIN
  d_step {
    LOCK_ACQ(TE);
    printf("@@ E locks, withdraws\n");
    LOAD(TE, LINK0_, t);
    if :: t -> STORE(TE, LINK0_, 0) :: else -> skip fi;
    LOAD(TE, LINK1_, t);
    if :: t -> STORE(TE, LINK1_, 0) :: else -> skip fi;
    RECOMPUTE_AND_UNLOCK(TE, t);
    if :: also_clear_sleeping -> STORE(TE, SLEEP_, 0) :: else -> skip fi
  }
}

/* membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED): a full barrier on every other CPU that runs
 * one of our threads, each at its own moment, in any order: one atomic drain step per thread,
 * any other thread may run between them */
#define MB_DRAIN(T, bit) \
  :: !(mb & bit) -> d_step { printf("@@ E membarrier: barrier on "); PRT(T); printf("'s CPU\n"); FLUSHALL(T); mb = mb | bit }

inline HEAVY_FENCE(mb) {
#if defined(BROKEN_NO_FENCE)
  skip
#elif defined(FALLBACK_FENCES) || defined(BROKEN_NO_MEMBARRIER)
  d_step { printf("@@ E full fence\n"); FLUSHALL(TE) }
#elif defined(MB_FIXED_ORDER)
  d_step { FLUSHALL(TE) };
#if W1
  d_step { FLUSHALL(TA) };
  d_step { FLUSHALL(TB) };
#endif
#if W2
  d_step { FLUSHALL(TG) };
#endif
#if CLOSE
  d_step { FLUSHALL(TX) };
#endif
#if NPUB >= 1
  d_step { FLUSHALL(TP1) };
#endif
#if NPUB >= 2
  d_step { FLUSHALL(TP2) };
#endif
  d_step { FLUSHALL(TE) }
#else
  d_step {
    printf("@@ E membarrier: own full fence\n");
    FLUSHALL(TE);
    mb = 0;                                 /* absent threads count as done */
#if !W1
    mb = mb | 3;
#endif
#if !W2
    mb = mb | 4;
#endif
#if !CLOSE
    mb = mb | 8;
#endif
#if NPUB < 1
    mb = mb | 16;
#endif
#if NPUB < 2
    mb = mb | 32;
#endif
    skip
  };
  do
  MB_DRAIN(TA, 1)
  MB_DRAIN(TB, 2)
  MB_DRAIN(TG, 4)
  MB_DRAIN(TX, 8)
  MB_DRAIN(TP1, 16)
  MB_DRAIN(TP2, 32)
  :: mb == 63 -> d_step { mb = 0; FLUSHALL(TE) }; break   /* own full fence on return */
  od
#endif
}

proctype Exec() {
  bool p0 = W1;         /* W1 parked */
  bool p1 = W2;         /* W2 parked */
  byte seen = 0;        /* the doorbell count already consumed */
  byte spur = SPURIOUS;
  bool r;
  byte t;
  byte mb;

loop:
  /* poll every parked wait (plain loads) */
  if
  :: p0 ->
       READY0(TE, r, t);
       if
       :: r ->
            /* resume W1's coroutine; it ends the wait: the stop_callback is deregistered
             * (std::stop_callback's destructor waits for a callback running on another
             * thread), then the frame with the wait node is freed */
            d_step {
              cbst != 1 -> cbst = 2;
              p0 = 0; r = 0;
              resume[0]++;
              assert(resume[0] <= 1);
              freed[0] = 1;
              printf("@@ E resumes W1, frees it\n")
            }
       :: else -> skip
       fi
  :: else -> skip
  fi;
  if
  :: p1 ->
       READY1(TE, r, t);
       if
       :: r ->
            d_step {
              p1 = 0; r = 0;
              resume[1]++;
              assert(resume[1] <= 1);
              freed[1] = 1;
              printf("@@ E resumes W2, frees it\n")
            }
       :: else -> skip
       fi
  :: else -> skip
  fi;
  if
  :: !p0 && !p1 -> goto done
  :: else -> skip
  fi;

  /* the sleep path */
  d_step { STORE(TE, SLEEP_, 1) };
  if :: p0 -> ANNOUNCE(0, T1, t) :: else -> skip fi;
  if :: p1 -> ANNOUNCE(1, T2, t) :: else -> skip fi;

  HEAVY_FENCE(mb);

#ifndef BROKEN_NO_RECHECK
  /* re-check */
  if :: p0 -> READY0(TE, r, t) :: else -> skip fi;
  if :: !r && p1 -> READY1(TE, r, t) :: else -> skip fi;
  if
  :: r ->
       /* call off the sleep */
       r = 0;
       WITHDRAW(t, 1);
#ifdef WITNESS_CALLOFF_PINNED
       assert(pins == 0);                   /* witness: a waker still holds a pin here */
#endif
#ifndef BROKEN_CALLOFF_NO_PINWAIT
       WAIT_UNPINNED;
#endif
       goto loop
  :: else -> skip
  fi;
#endif

  /* sleep: the eventfd read blocks while the count has not moved; it may also return without
   * a ring (spuriously, or E's own deadline timer): at most SPURIOUS times */
  if
  :: d_step {
       bell != seen -> printf("@@ E wakes: doorbell\n");
#ifdef WITNESS_DOORBELL
       assert(false);                       /* witness: a ring ends a real sleep */
#endif
       STORE(TE, SLEEP_, 0)
     }
  :: d_step { spur > 0 -> spur--; printf("@@ E wakes: timeout\n"); STORE(TE, SLEEP_, 0) }
  fi;
  WITHDRAW(t, 0);
  WAIT_UNPINNED_THEN(seen = bell);
  goto loop;

done:
  /* every wait resumed: E's thread returns and the executor is destroyed */
#ifdef EXIT_WAITS_PINS
  WAIT_UNPINNED;                            /* the alternative fix: teardown waits for pins */
#endif
  atomic { e_exited = 1; e_freed = 1; printf("@@ E exits, is destroyed\n") }
}

/* --------------------------------------------------------------------- notifiers --- */

/* After its unlock, a waker that pinned E: if E.sleeping: ring E's doorbell (an eventfd write:
 * a syscall, a full fence); then pins-- (a release RMW, the last touch of E).
 * One step: the ring and the unpin are left movers behind the load of sleeping. While the pin
 * is held E cannot pass pins == 0, so it neither reads bell (seen := bell comes after the pin
 * wait) nor sees pins change; E's sleep, the other reader of bell, is only enabled by a ring;
 * what the drains flush (min_target, the unlock) is read either under the lock (free only
 * once the unlock is flushed) or by loads that commute with the load of sleeping. */
#ifdef FINE_GRAIN
inline WAKE_AND_UNPIN(me, t) {
  d_step { assert(!e_freed); VLOAD(me, SLEEP_, t) };
  if
  :: t -> d_step { FLUSHALL(me); assert(!e_freed); bell++; printf("@@ "); PRT(me); printf(" rings E's doorbell\n") }
  :: else -> skip
  fi;
  d_step { FLUSHALL(me); assert(!e_freed); pins--; printf("@@ "); PRT(me); printf(" unpins E\n"); t = 0 }
}
#else
inline WAKE_AND_UNPIN(me, t) {
  d_step {
    assert(!e_freed);
    VLOAD(me, SLEEP_, t);
    if
    :: t -> FLUSHALL(me); bell++; printf("@@ "); PRT(me); printf(" rings E's doorbell\n")
    :: else -> skip
    fi;
    FLUSHALL(me); pins--;
    printf("@@ "); PRT(me); printf(" unpins E\n");
    t = 0
  }
}
#endif

/* advance the own position (address a; NADDR: nobody reads it, no store) to v, signal(v);
 * repeat with v + 1 up to last */
proctype Notifier(byte me; byte a; byte v; byte last) {
  bool f;
  bool l0;
  bool l1;
  bool r0;
  bool r1;
  byte t;

again:
  if
  :: a < NADDR -> d_step { STORE(me, a, v) }  /* plain store; then only a compiler barrier */
  :: else -> skip
  fi;
#ifdef FALLBACK_FENCES
  d_step { FLUSHALL(me) };                  /* the fallback's full fence */
#endif
  d_step {
    VLOAD(me, MINT_, t); f = (v < t); t = 0;
    if :: f -> printf("@@ "); PRT(me); printf(" fast path (v = %d)\n", v) :: else -> skip fi
  };
  if
  :: f -> goto out
  :: else -> skip
  fi;

  LOCK_SPIN
#ifdef FINE_GRAIN
  /* the protocol's order, one step per load: for each linked node whose target v reaches,
   * evaluate ready (its own position loaded too), unlink it and pin E; then recompute, unlock */
  d_step { LOCK_ACQ(me); printf("@@ "); PRT(me); printf(" locks, scans\n") };
  d_step { LOAD(me, LINK0_, l0); l0 = l0 && T1 <= v; assert(!(l0 && freed[0])) };
  if
  :: l0 ->
       READY0(me, r0, t);
       if
       :: r0 -> d_step { assert(!freed[0]); STORE(me, LINK0_, 0); FLUSHALL(me); assert(!e_freed); pins++; f = 1 }
       :: else -> skip
       fi
  :: else -> skip
  fi;
  d_step { LOAD(me, LINK1_, l1); l1 = l1 && T2 <= v; assert(!(l1 && freed[1])) };
  if
  :: l1 ->
       READY1(me, r1, t);
       if
       :: r1 ->
            d_step {
              assert(!freed[1]); STORE(me, LINK1_, 0);
              if :: !f -> FLUSHALL(me); assert(!e_freed); pins++; f = 1 :: else -> skip fi
            }
       :: else -> skip
       fi
  :: else -> skip
  fi;
  d_step { RECOMPUTE_AND_UNLOCK(me, t); l0 = 0; l1 = 0; r0 = 0; r1 = 0 };
#else
  d_step {
    LOCK_ACQ(me);
    printf("@@ "); PRT(me); printf(" locks, scans\n");
    /* the linked nodes whose target this advance reaches */
    LOAD(me, LINK0_, l0);
    l0 = l0 && T1 <= v;
    LOAD(me, LINK1_, l1);
    l1 = l1 && T2 <= v;
    assert(!(l0 && freed[0]));
    assert(!(l1 && freed[1]))
  };
  if :: l0 -> NREADY0(me, v, r0, t) :: else -> skip fi;
  if :: l1 -> NREADY1(me, v, r1, t) :: else -> skip fi;
  d_step {
    /* unlink the ready nodes, pin E (once), recompute min_target, unlock */
    if :: r0 -> assert(!freed[0]); STORE(me, LINK0_, 0) :: else -> skip fi;
    if :: r1 -> assert(!freed[1]); STORE(me, LINK1_, 0) :: else -> skip fi;
    if
    :: r0 || r1 -> FLUSHALL(me); assert(!e_freed); pins++; f = 1   /* f: pinned */
    :: else -> skip
    fi;
    RECOMPUTE_AND_UNLOCK(me, t);
    l0 = 0; l1 = 0; r0 = 0; r1 = 0
  };
#endif
  if
  :: f -> WAKE_AND_UNPIN(me, t)
  :: else -> skip
  fi;
out:
#if A_ADV > 1
  if
  :: v < last -> d_step { v++; f = 0 }; goto again
  :: else -> f = 0
  fi
#else
  f = 0
#endif
}

#if CLOSE
/* shutdown: closed := 1, then unlink every announcement and wake its executor */
proctype Closer() {
  bool pinned;
  byte t;

  d_step { STORE(TX, CLOSED_, 1) };
  LOCK_SPIN
  d_step {
    LOCK_ACQ(TX);
    printf("@@ closer locks, unlinks all\n");
    LOAD(TX, LINK0_, t);
    if
    :: t -> assert(!freed[0]); STORE(TX, LINK0_, 0); pinned = 1
    :: else -> skip
    fi;
    LOAD(TX, LINK1_, t);
    if
    :: t -> assert(!freed[1]); STORE(TX, LINK1_, 0); pinned = 1
    :: else -> skip
    fi;
    if
    :: pinned -> FLUSHALL(TX); assert(!e_freed); pins++
    :: else -> skip
    fi;
    RECOMPUTE_AND_UNLOCK(TX, t)
  };
  if
  :: pinned -> WAKE_AND_UNPIN(TX, t); pinned = 0
  :: else -> skip
  fi
}
#endif

#if CANCEL
/* stop_source::request_stop() for W1: the flag (an atomic RMW), then W1's callback rings E if
 * it sleeps. No pin: std::stop_callback's destructor (run by W1's coroutine before its frame
 * and, eventually, E go away) waits for a running callback instead. */
proctype Canceller() {
  bool s;
  atomic {
    cancelled0 = 1;
    printf("@@ canceller: cancelled[W1] := 1 (RMW)\n");
    if
    :: cbst == 0 -> cbst = 1
    :: else -> goto cdone                   /* the callback was deregistered */
    fi
  };
  d_step { assert(!e_freed); s = mem[SLEEP_]; printf("@@ canceller load sleeping -> %d\n", s) };
  if
  :: s -> d_step { assert(!e_freed); bell++; printf("@@ canceller rings E's doorbell\n") }
  :: else -> skip
  fi;
  d_step { s = 0; cbst = 2 };
cdone:
  skip
}
#endif

init {
  atomic {
    mem[MINT_] = INF;
    run Flusher(TE);
#if W1
    run Flusher(TA);
    run Flusher(TB);
#endif
#if W2
    run Flusher(TG);
#endif
#if CLOSE
    run Flusher(TX);
#endif
#if NPUB >= 1
    run Flusher(TP1);
#endif
#if NPUB >= 2
    run Flusher(TP2);
#endif
    run Exec();
#if W1
    run Notifier(TA, A_, 1, A_ADV);
    run Notifier(TB, B_, 1, 1);
#endif
#if W2
    run Notifier(TG, G_, 1, 1);
#endif
#if NPUB >= 1
    run Notifier(TP1, NADDR, 1, 1);
#endif
#if NPUB >= 2
    run Notifier(TP2, NADDR, 2, 2);
#endif
#if CLOSE
    run Closer();
#endif
#if CANCEL && W1
    run Canceller();
#endif
  }
}

/* progress: E eventually resumes every wait and exits (pan -a -f: under weak fairness) */
ltl live { <> e_exited }
