"""Independent check of a medinfer SEG with pydicom (not DCMTK).

usage: check_seg.py SEG LABELS.raw MANIFEST
MANIFEST: first line "cols rows slices n_segments"; then one line per source
slice k (ascending): "sop_instance_uid frame file".  LABELS.raw is the uint8
label map, slice-major.  Checks that every frame sits at the
ImagePositionPatient of the source slice it references, that its mask equals
the label map there, that frames exist exactly where a segment is present,
and that identity/references follow the source.  Prints OK or the failure."""
import sys

import numpy as np
import pydicom


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def main():
    seg_path, raw_path, manifest_path = sys.argv[1:4]
    with open(manifest_path) as f:
        cols, rows, slices, nseg = map(int, f.readline().split())
        entries = [line.split() for line in f if line.strip()]
    labels = np.fromfile(raw_path, dtype=np.uint8).reshape(slices, rows, cols)

    # Source positions, read from the source files themselves.
    where = {}
    cache = {}
    for k, (sop, frame, path) in enumerate(entries):
        frame = int(frame)
        if path not in cache:
            cache[path] = pydicom.dcmread(path, stop_before_pixels=True)
        src = cache[path]
        if frame == 0:
            ipp = [float(v) for v in src.ImagePositionPatient]
        else:
            pf = src.PerFrameFunctionalGroupsSequence[frame - 1]
            ipp = [float(v) for v in pf.PlanePositionSequence[0].ImagePositionPatient]
        where[(sop, frame)] = (k, np.array(ipp))
    src0 = cache[entries[0][2]]

    seg = pydicom.dcmread(seg_path)
    if seg.SOPClassUID != "1.2.840.10008.5.1.4.1.1.66.4":
        fail("not a Segmentation Storage object")
    for kw in ("StudyInstanceUID", "PatientID", "FrameOfReferenceUID"):
        if getattr(seg, kw) != getattr(src0, kw):
            fail(kw + " differs from the source")
    if seg.SeriesInstanceUID == src0.SeriesInstanceUID:
        fail("SEG reuses the source series")
    refs = [s.SeriesInstanceUID for s in seg.ReferencedSeriesSequence]
    if src0.SeriesInstanceUID not in refs:
        fail("ReferencedSeriesSequence lacks the source series")
    if len(seg.SegmentSequence) != nseg:
        fail("%d segments described, %d expected" % (len(seg.SegmentSequence), nseg))
    fractional = seg.SegmentationType == "FRACTIONAL"

    pixels = seg.pixel_array
    nframes = int(seg.NumberOfFrames)
    if nframes == 1:
        pixels = pixels.reshape(1, rows, cols)
    if pixels.shape != (nframes, rows, cols):
        fail("pixel array shape %s" % (pixels.shape,))
    seen = set()
    for i, pf in enumerate(seg.PerFrameFunctionalGroupsSequence):
        s = int(pf.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        ipp = np.array([float(v) for v in pf.PlanePositionSequence[0].ImagePositionPatient])
        ref = pf.DerivationImageSequence[0].SourceImageSequence[0]
        frame = int(ref.ReferencedFrameNumber) if "ReferencedFrameNumber" in ref else 0
        key = (ref.ReferencedSOPInstanceUID, frame)
        if key not in where:
            fail("frame %d references an unknown source image %s" % (i + 1, key))
        k, src_ipp = where[key]
        if np.abs(ipp - src_ipp).max() > 1e-4:
            fail("frame %d at %s, its source slice at %s" % (i + 1, ipp, src_ipp))
        mask = pixels[i] > (127 if fractional else 0)
        expected = labels[k] == s
        if not np.array_equal(mask, expected):
            fail("frame %d (segment %d, slice %d): %d voxels differ" % (i + 1, s, k, int((mask != expected).sum())))
        if (s, k) in seen:
            fail("segment %d slice %d appears twice" % (s, k))
        seen.add((s, k))
    for s in range(1, nseg + 1):
        for k in range(slices):
            if (labels[k] == s).any() and (s, k) not in seen:
                fail("segment %d present in slice %d but no frame" % (s, k))
    print("OK %d frames" % nframes)


if __name__ == "__main__":
    main()
