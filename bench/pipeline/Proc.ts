/**
 * Another process's resident set and CPU time from /proc/<pid>, so the bench
 * reports the gateway process alone (never the harness that drives it).
 */
import * as Fs from "node:fs"

/** Linux's USER_HZ: /proc/<pid>/stat counts CPU time in these ticks (`getconf CLK_TCK`). */
const ticksPerSecond = 100

/** User plus system CPU time of `pid` so far, in microseconds (10 ms resolution). */
export const cpuMicros = (pid: number): number => {
  const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  return ((utime + stime) / ticksPerSecond) * 1e6
}

/** Resident set of `pid` in MB (VmRSS). */
export const rssMb = (pid: number): number => {
  const status = Fs.readFileSync(`/proc/${pid}/status`, "utf8")
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status)
  return match === null ? Number.NaN : Number(match[1]) / 1024
}

/** Samples `pid`'s RSS every 100 ms: the peak since the last `startPhase()`, and every sample of the phase. */
export const watchRss = (pid: number) => {
  let phasePeak = 0
  let samples: Array<{ readonly at: number; readonly mb: number }> = []
  const sample = () => {
    try {
      const mb = rssMb(pid)
      phasePeak = Math.max(phasePeak, mb)
      samples.push({ at: performance.now(), mb })
    } catch {
      // The process has exited.
    }
  }
  const timer = setInterval(sample, 100)
  return {
    startPhase: () => {
      phasePeak = 0
      samples = []
      sample()
    },
    phasePeakMb: () => (sample(), phasePeak),
    /** Least-squares slope of the phase's samples, MB per minute. */
    phaseSlopeMbPerMinute: () => {
      const n = samples.length
      if (n < 2) return 0
      const meanX = samples.reduce((sum, s) => sum + s.at, 0) / n
      const meanY = samples.reduce((sum, s) => sum + s.mb, 0) / n
      const num = samples.reduce((sum, s) => sum + (s.at - meanX) * (s.mb - meanY), 0)
      const den = samples.reduce((sum, s) => sum + (s.at - meanX) ** 2, 0)
      return den === 0 ? 0 : (num / den) * 60_000
    },
    stop: () => clearInterval(timer)
  }
}
