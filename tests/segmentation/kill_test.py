#!/usr/bin/python3
"""An interrupted `medinfer segment` leaves no partial SEG, and rerunning
completes only what is missing.

usage: kill_test.py MEDINFER CARD WORKDIR

Three phantom series in one input folder; the run is killed with SIGKILL as
soon as the first SEG is in place (so the second is being computed or
written).  Then every *.seg.dcm present must read completely with pydicom
(all frames decoded), the rerun must report the finished ones as already
there, write the rest, and leave no temporary file behind."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pydicom


def segs(out):
    return sorted(n for n in os.listdir(out) if n.endswith(".seg.dcm")) if os.path.isdir(out) else []


def check_complete(path):
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array  # decodes every frame: fails on a truncated file
    n = int(ds.NumberOfFrames)
    if (frames.shape[0] if n > 1 else 1) != n:
        raise SystemExit("FAIL: %s: %d frames decoded, %d declared" % (path, frames.shape[0], n))


def main():
    medinfer, card, work = sys.argv[1:4]
    shutil.rmtree(work, ignore_errors=True)
    study = os.path.join(work, "study")
    for i, seed in enumerate((9101, 9102, 9103)):
        d = os.path.join(work, "p%d" % seed)
        subprocess.run([medinfer, "phantom", "--out", d, "--seed", str(seed), "--size", "128x128x64"], check=True,
                       stdout=subprocess.DEVNULL)
        shutil.move(os.path.join(d, "dicom"), os.path.join(study, "s%d" % i))
    out = os.path.join(work, "out")
    p = subprocess.Popen([medinfer, "segment", "--model", card, "--input", study, "--output", out, "--threads", "1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not segs(out) and p.poll() is None and time.time() - t0 < 300:
        time.sleep(0.05)
    if p.poll() is not None:
        raise SystemExit("FAIL: the run ended (%s) before it could be interrupted" % p.returncode)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = segs(out)
    print("killed after %.1f s with %d of 3 SEGs written; folder: %s" % (time.time() - t0, len(done),
                                                                         sorted(os.listdir(out))))
    if not 1 <= len(done) < 3:
        raise SystemExit("FAIL: expected the kill between the first and the last SEG")
    for n in done:
        check_complete(os.path.join(out, n))
    r = subprocess.run([medinfer, "segment", "--model", card, "--input", study, "--output", out, "--threads", "2"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        print(r.stdout)
        raise SystemExit("FAIL: rerun exited %d" % r.returncode)
    want = "%d written, %d already there" % (3 - len(done), len(done))
    if want not in r.stdout:
        raise SystemExit("FAIL: rerun did not say '%s':\n%s" % (want, r.stdout))
    if len(segs(out)) != 3:
        raise SystemExit("FAIL: %d SEGs after the rerun" % len(segs(out)))
    for n in segs(out):
        check_complete(os.path.join(out, n))
    left = [n for n in os.listdir(out) if ".tmp-" in n]
    if left:
        raise SystemExit("FAIL: temporary files left: %s" % left)
    print("OK")


if __name__ == "__main__":
    main()
