"""`medinfer segment` end to end on phantom studies with a random U-Net.

usage: cli_test.py MEDINFER MODELS_DIR WORK_DIR
Checks: SEG written and valid (dciodvfy: no error lines; pydicom: references
the source series, frames on source slice positions), report.json contents,
rerun skips what exists, --force rewrites, no temporary files left, a study
with a corrupt series, a non-image object and a valid CT gives exit 4 with
reasons, usage errors give 2, `models` and `list` show the model."""
import glob
import json
import os
import shutil
import subprocess
import sys

import pydicom

FAILURES = []


def check(cond, msg):
    if not cond:
        FAILURES.append(msg)
        print("FAIL:", msg)


def run(args, env, expect=None):
    p = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if expect is not None:
        check(p.returncode == expect, "%s: exit %d, expected %d\n%s%s" % (" ".join(args[1:3]), p.returncode, expect,
                                                                          p.stdout, p.stderr))
    return p


def no_temp_files(d):
    left = [f for f in os.listdir(d) if ".tmp-" in f]
    check(not left, "temporary files left in %s: %s" % (d, left))


def dciodvfy_errors(path):
    p = subprocess.run(["dciodvfy", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return [line for line in p.stdout.splitlines() if line.startswith("Error")]


def check_seg(seg_path, src_dir):
    errs = dciodvfy_errors(seg_path)
    check(not errs, "dciodvfy errors in %s: %s" % (seg_path, errs[:5]))
    seg = pydicom.dcmread(seg_path)
    srcs = [pydicom.dcmread(f, stop_before_pixels=True) for f in glob.glob(os.path.join(src_dir, "*.dcm"))]
    by_uid = {s.SOPInstanceUID: s for s in srcs}
    check(seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4", "not a SEG")
    check(seg.StudyInstanceUID == srcs[0].StudyInstanceUID, "SEG study differs")
    check(seg.FrameOfReferenceUID == srcs[0].FrameOfReferenceUID, "SEG frame of reference differs")
    check(seg.ReferencedSeriesSequence[0].SeriesInstanceUID == srcs[0].SeriesInstanceUID, "SEG refers elsewhere")
    check(len(seg.SegmentSequence) == 3, "3 segments expected")
    for pf in seg.PerFrameFunctionalGroupsSequence:
        ref = pf.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        ipp = [float(v) for v in pf.PlanePositionSequence[0].ImagePositionPatient]
        src = by_uid.get(ref)
        check(src is not None, "frame references unknown image")
        if src is not None:
            d = max(abs(a - float(b)) for a, b in zip(ipp, src.ImagePositionPatient))
            check(d < 1e-3, "frame not on its source slice (%g mm)" % d)


def main():
    medinfer, models, work = sys.argv[1:4]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    env = dict(os.environ, MEDINFER_MODEL_PATH=models)

    # One study: phantom CT.
    study = os.path.join(work, "study")
    run([medinfer, "phantom", "--out", study, "--size", "64x64x40", "--seed", "9001"], env, 0)
    src = os.path.join(study, "dicom")
    before = sorted(os.listdir(src))
    out = os.path.join(work, "out")
    p = run([medinfer, "segment", "--model", "tiny-unet", "--input", src, "--output", out, "--threads", "2"], env, 0)
    check(sorted(os.listdir(src)) == before, "input folder changed")
    segs = glob.glob(os.path.join(out, "*.seg.dcm"))
    check(len(segs) == 1, "one SEG expected, got %s" % segs)
    series_uid = pydicom.dcmread(glob.glob(os.path.join(src, "*.dcm"))[0], stop_before_pixels=True).SeriesInstanceUID
    check(os.path.basename(segs[0]) == series_uid + ".seg.dcm", "SEG name %s" % segs[0])
    check_seg(segs[0], src)
    rep = json.load(open(os.path.join(out, "report.json")))
    check(rep["model"]["name"] == "tiny-unet", "report model")
    check(rep["summary"] == {"ok": 1, "existing": 0, "skipped": 0, "error": 0, "cancelled": False},
          "summary %s" % rep["summary"])
    s = rep["series"][0]
    check(s["status"] == "ok" and s["series_uid"] == series_uid and s["seg"] == series_uid + ".seg.dcm",
          "series entry %s" % s)
    check(set(s["seconds"]) == {"read", "preprocess", "inference", "postprocess", "write", "total"},
          "timings %s" % s["seconds"])
    check([l["name"] for l in s["labels"]] == ["Liver", "Spleen", "Heart"], "labels")
    check(all(l["volume_ml"] >= 0 for l in s["labels"]) and sum(l["voxels"] for l in s["labels"]) > 0,
          "label volumes %s" % s["labels"])
    no_temp_files(out)
    mtime = os.path.getmtime(segs[0])

    # Rerun: skipped; --force rewrites.
    run([medinfer, "segment", "--model", "tiny-unet", "--input", src, "--output", out], env, 0)
    rep = json.load(open(os.path.join(out, "report.json")))
    check(rep["summary"]["existing"] == 1 and rep["series"][0]["status"] == "skipped", "rerun did not skip")
    check(os.path.getmtime(segs[0]) == mtime, "rerun rewrote the SEG")
    run([medinfer, "segment", "--model", os.path.join(models, "tiny-unet.card.json"), "--input", src, "--output", out,
         "--force", "--series", series_uid], env, 0)
    rep = json.load(open(os.path.join(out, "report.json")))
    check(rep["summary"]["ok"] == 1, "--force did not rewrite: %s" % rep["summary"])
    no_temp_files(out)

    # A stale temporary file from a killed run is cleaned up.
    stale = os.path.join(out, series_uid + ".seg.dcm.tmp-999999999-0")
    open(stale, "w").write("partial")
    run([medinfer, "segment", "--model", "tiny-unet", "--input", src, "--output", out], env, 0)
    check(not os.path.exists(stale), "stale temporary file kept")

    # Mixed study: valid CT, corrupt series, non-image object (a SEG), MR.
    mixed = os.path.join(work, "mixed")
    run([medinfer, "phantom", "--out", os.path.join(work, "p1"), "--size", "64x64x40", "--seed", "9002"], env, 0)
    run([medinfer, "phantom", "--out", os.path.join(work, "p2"), "--size", "64x64x40", "--seed", "9003"], env, 0)
    run([medinfer, "phantom", "--out", os.path.join(work, "p3"), "--size", "64x64x40", "--seed", "9004", "--mr"],
        env, 0)
    shutil.copytree(os.path.join(work, "p1", "dicom"), os.path.join(mixed, "ct"))
    shutil.copytree(os.path.join(work, "p2", "dicom"), os.path.join(mixed, "corrupt"))
    shutil.copytree(os.path.join(work, "p3", "dicom"), os.path.join(mixed, "mr"))
    for f in sorted(glob.glob(os.path.join(mixed, "corrupt", "*.dcm")))[:5]:
        size = os.path.getsize(f)
        with open(f, "r+b") as h:  # keep the header, cut the pixel data
            h.truncate(size - 3000)
    os.makedirs(os.path.join(mixed, "other"))
    shutil.copy(segs[0], os.path.join(mixed, "other", "old.seg.dcm"))
    open(os.path.join(mixed, "other", "notes.txt"), "w").write("not DICOM")
    out2 = os.path.join(work, "out-mixed")
    p = run([medinfer, "segment", "--model", "tiny-unet", "--input", mixed, "--output", out2], env, 4)
    rep = json.load(open(os.path.join(out2, "report.json")))
    status = {s["description"]: (s["status"], s.get("reason", "")) for s in rep["series"]}
    print(json.dumps(status, indent=1))
    check(status.get("medinfer phantom seed 9002", ("",))[0] == "ok", "valid CT not segmented: %s" % status)
    bad = status.get("medinfer phantom seed 9003", ("", ""))
    check(bad[0] == "error" and bad[1], "corrupt series not reported as an error: %s" % (bad,))
    mr = status.get("medinfer phantom seed 9004", ("", ""))
    check(mr[0] == "skipped" and "modality MR" in mr[1], "MR series not skipped with reason: %s" % (mr,))
    seg = status.get("tiny-unet segmentation", ("", ""))
    check(seg[0] == "skipped" and "SEG" in seg[1], "non-image series (a SEG) not reported: %s" % (seg,))
    skipped = {os.path.basename(f["file"]): f["reason"] for f in rep["skipped_files"]}
    check("notes.txt" in skipped and "IM00001.dcm" in skipped, "unreadable files not reported: %s" % skipped)
    check(rep["summary"]["ok"] == 1 and rep["summary"]["error"] == 1, "mixed summary %s" % rep["summary"])
    check(len(glob.glob(os.path.join(out2, "*.seg.dcm"))) == 1, "mixed: one SEG expected")
    no_temp_files(out2)

    # Only failures: exit 1.  Usage: exit 2.  Output inside the input: refused.
    run([medinfer, "segment", "--model", "tiny-unet", "--input", os.path.join(mixed, "corrupt"), "--output",
         os.path.join(work, "out-bad")], env, 1)
    run([medinfer, "segment", "--model", "tiny-unet", "--output", out], env, 2)
    run([medinfer, "segment", "--model", "tiny-unet", "--input", src, "--output", out, "--device", "tpu"], env, 2)
    for bad in ("cuda:", "cuda:x", "cuda:-1", "cudax"):
        run([medinfer, "segment", "--model", "tiny-unet", "--input", src, "--output", out, "--device", bad], env, 2)

    # Devices: --device auto runs (on the GPU, or on the CPU saying why);
    # --device cuda without a usable GPU fails with the reason.
    devs = run([medinfer, "devices"], env, 0).stdout
    check(devs.startswith("cpu"), "devices: %s" % devs)
    gpu = "cuda:0" in devs.split()
    out_auto = os.path.join(work, "out-auto")
    p = run([medinfer, "segment", "--model", "tiny-unet", "--input", src, "--output", out_auto, "--device", "auto"],
            env, 0)
    dev = json.load(open(os.path.join(out_auto, "report.json")))["device"]
    if gpu:
        check(dev.startswith("cuda:0") and "device: cuda:0" in p.stderr, "auto with a GPU: %s / %s" % (dev, p.stderr))
    else:
        check(dev.startswith("cpu (--device auto: ") and "device: cpu (--device auto: " in p.stderr,
              "auto without a GPU must say it runs on the CPU and why: %s / %s" % (dev, p.stderr))
        p = run([medinfer, "segment", "--model", "tiny-unet", "--input", src, "--output", os.path.join(work, "out-cuda"),
                 "--device", "cuda"], env, 1)
        check("--device cuda:0: no usable CUDA device" in p.stderr, "--device cuda without a GPU: %s" % p.stderr)
        check(not os.path.exists(os.path.join(work, "out-cuda", "report.json")) or
              not glob.glob(os.path.join(work, "out-cuda", "*.seg.dcm")), "no SEG without a device")
    # A mode asked for that the CPU lacks runs FP32, and the device line (the
    # progress log and report.json) says why: at the portable level neither
    # fast nor bf16 mode is there, on any CPU.
    out_modes = os.path.join(work, "out-modes")
    p = run([medinfer, "segment", "--model", "tiny-unet", "--input", src, "--output", out_modes, "--fast", "--bf16"],
            dict(env, MEDINFER_ISA="generic"), 0)
    want = "cpu (fp32; fast mode needs a CPU with AVX2 or AVX-512; bf16 mode needs a CPU with AVX512-BF16)"
    dev = json.load(open(os.path.join(out_modes, "report.json")))["device"]
    check(dev == want and ("device: " + want + "\n") in p.stderr,
          "modes this CPU lacks must be named with why: %s / %s" % (dev, p.stderr))
    # Refusals leave nothing behind: no folder made inside the input (also
    # through a link to it, also several levels deep), none for a mistyped input.
    p = run([medinfer, "segment", "--model", "tiny-unet", "--input", src, "--output", os.path.join(src, "segs")], env, 1)
    check("inside the input" in p.stderr, "output inside input: %s" % p.stderr)
    check(not os.path.exists(os.path.join(src, "segs")), "a refused output folder inside the input was made")
    link = os.path.join(work, "link-to-src")
    os.symlink(src, link)
    p = run([medinfer, "segment", "--model", "tiny-unet", "--input", src, "--output",
             os.path.join(link, "a", "b")], env, 1)
    check("inside the input" in p.stderr, "output inside input through a link: %s" % p.stderr)
    check(not os.path.exists(os.path.join(src, "a")), "a refused output folder inside the input (via a link) was made")
    missing_out = os.path.join(work, "out-missing-input")
    p = run([medinfer, "segment", "--model", "tiny-unet", "--input", os.path.join(work, "no-such-study"), "--output",
             missing_out], env, 1)
    check("no-such-study: no such file or folder" in p.stderr, "missing input: %s" % p.stderr)
    check(not os.path.exists(missing_out), "a mistyped input left an output folder behind")
    p = run([medinfer, "segment", "--model", "nope", "--input", src, "--output", out], env, 1)
    check("no installed model named" in p.stderr, p.stderr)
    # A model file that does not load (truncated): exit 1 naming the file, no SEG,
    # and a report that says why rather than listing a SEG that was never written.
    bad_models = os.path.join(work, "bad-models")
    os.makedirs(bad_models)
    card = json.load(open(os.path.join(models, "tiny-unet.card.json")))
    blob = open(os.path.join(models, card["model"]), "rb").read()
    open(os.path.join(bad_models, "cut.onnx"), "wb").write(blob[:len(blob) // 2])
    card["model"] = "cut.onnx"
    json.dump(card, open(os.path.join(bad_models, "tiny-unet.card.json"), "w"))
    out_bad = os.path.join(work, "out-bad-model")
    p = run([medinfer, "segment", "--model", os.path.join(bad_models, "tiny-unet.card.json"), "--input", src,
             "--output", out_bad], env, 1)
    check("cut.onnx" in p.stderr, "bad model: stderr names the file: %s" % p.stderr)
    check(not glob.glob(os.path.join(out_bad, "*.seg.dcm")), "bad model: no SEG")
    rep = json.load(open(os.path.join(out_bad, "report.json")))
    s = rep["series"][0]
    check(s["status"] == "error" and "cut.onnx" in s.get("reason", "") and "seg" not in s,
          "bad model: series entry %s" % s)
    check("cut.onnx" in rep.get("error", "") and rep["summary"]["error"] == 1 and rep["summary"]["ok"] == 0,
          "bad model: report error %s, summary %s" % (rep.get("error"), rep["summary"]))
    no_temp_files(out_bad)

    p = run([medinfer, "segment", "--help"], env, 0)
    check("4 partial" in p.stdout, "--help documents exit status 4")

    # Loose files as input.
    files = sorted(glob.glob(os.path.join(src, "*.dcm")))
    out3 = os.path.join(work, "out-files")
    run([medinfer, "segment", "--model", "tiny-unet", "--output", out3, "--input"] + files, env, 0)
    check(len(glob.glob(os.path.join(out3, "*.seg.dcm"))) == 1, "loose files: one SEG expected")

    # models and list.
    p = run([medinfer, "models"], env, 0)
    check("tiny-unet" in p.stdout, "models: %s" % p.stdout)
    p = run([medinfer, "list", mixed], env, 0)
    lines = [l for l in p.stdout.splitlines() if "seed 900" in l]
    check(any("9002" in l and "tiny-unet" in l for l in lines), "list: model column for CT\n" + p.stdout)
    check(any("9004" in l and "tiny-unet" not in l for l in lines), "list: model column for MR\n" + p.stdout)

    print("FAILED: %d" % len(FAILURES) if FAILURES else "OK")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
