package lb

import "time"

// The locality schedulers (lblc, lblcr) remember, per destination address, which
// backend(s) served it, and fall back to wlc for a destination they do not know or
// whose backend is overloaded. The overload test is the kernel's: a backend is
// overloaded when its active connections exceed its weight while some backend is
// below half of its own weight.

const (
	// localityExpire is the kernel's default lblc_expiration / lblcr_expiration
	// sysctl: an entry unused this long is forgotten, and an lblcr set that has not
	// changed this long sheds its most loaded member.
	localityExpire = 24 * time.Hour
	// localitySweep is how often expired entries are looked for (the kernel's
	// periodic check runs every 30 s too).
	localitySweep = 30 * time.Second
	// localityMaxEntries and localityIdle mirror the kernel's table limit: above
	// 16 * 1024 entries, those idle for 6 minutes are dropped as well.
	localityMaxEntries = 16 * 1024
	localityIdle       = 6 * time.Minute
)

// locality is the state lblc and lblcr share: a wlc index for fresh choices and a
// count of backends under half load, so that the overload test does not scan.
type locality struct {
	pool
	wlc       *loadIndex
	underHalf int
	now       func() time.Time
	lastSweep time.Time
}

func (l *locality) init() {
	l.wlc = newLoadIndex(wlcKey)
	l.now = time.Now
	l.changed = l.onChange
}

func (l *locality) onChange(d *dest) {
	l.wlc.place(d)
	if h := d.active*2 < int64(d.Weight); h != d.half {
		d.half = h
		if h {
			l.underHalf++
		} else {
			l.underHalf--
		}
	}
}

func (l *locality) update(bs []Backend) {
	for _, d := range l.replace(bs) {
		l.wlc.remove(d)
	}
	l.underHalf = 0
	for _, d := range l.dests {
		d.half = d.active*2 < int64(d.Weight)
		if d.half {
			l.underHalf++
		}
		l.wlc.place(d)
	}
}

// usable reports whether a remembered backend may take the connection.
func (l *locality) usable(d *dest) bool {
	return l.live(d) && d.available() && !l.overloaded(d)
}

// overloaded is the kernel's is_overloaded for lblc and lblcr. An overloaded backend
// is never under half load itself, so the count covers "some other backend".
func (l *locality) overloaded(d *dest) bool {
	return d.active > int64(d.Weight) && l.underHalf > 0
}

// sweepDue reports whether the periodic expiry check should run now.
func (l *locality) sweepDue(now time.Time) bool {
	if now.Sub(l.lastSweep) < localitySweep {
		return false
	}
	l.lastSweep = now
	return true
}

// stale reports whether an entry last used at lastuse should be forgotten.
func stale(lastuse, now time.Time, entries int) bool {
	idle := now.Sub(lastuse)
	return idle > localityExpire || (entries > localityMaxEntries && idle > localityIdle)
}
