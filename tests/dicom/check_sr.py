"""Independent check of a medinfer detection SR with pydicom (not DCMTK).

usage: check_sr.py SR EXPECTED.json
EXPECTED (written by test_sr.cpp): the source's study/series/frame of
reference UIDs, patient ID, number of source instances and per finding the
tracking id/UID ("" = any), type and category codes ("scheme:value"), score
in percent, the 18 ellipsoid coordinates and the referenced [SOP instance
UID, frame] pairs.  Prints OK or the first failure."""
import json
import sys

import pydicom


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def code(seq):
    return "%s:%s" % (seq[0].CodingSchemeDesignator, seq[0].CodeValue)


def concept(item):
    return code(item.ConceptNameCodeSequence)


def find(items, name):
    """Depth-first content items with this concept name."""
    out = []
    for it in items:
        if "ConceptNameCodeSequence" in it and concept(it) == name:
            out.append(it)
        if "ContentSequence" in it:
            out.extend(find(it.ContentSequence, name))
    return out


def main():
    sr_path, expected_path = sys.argv[1:3]
    with open(expected_path) as f:
        exp = json.load(f)
    sr = pydicom.dcmread(sr_path)
    if sr.SOPClassUID != "1.2.840.10008.5.1.4.1.1.88.34":
        fail("SOP class %s is not Comprehensive 3D SR" % sr.SOPClassUID)
    if sr.Modality != "SR":
        fail("Modality " + sr.Modality)
    if sr.StudyInstanceUID != exp["study"] or sr.PatientID != exp["patient_id"]:
        fail("study or patient differs from the source")
    if sr.SeriesInstanceUID == exp["series"]:
        fail("the report reuses the source series")
    for kw in ("ContentDate", "ContentTime", "SeriesDescription", "SeriesNumber", "Manufacturer", "SoftwareVersions"):
        if not str(sr.get(kw, "")):
            fail(kw + " is empty")
    if concept(sr) != "DCM:126000":
        fail("document title %s is not Imaging Measurement Report" % concept(sr))
    tpl = sr.ContentTemplateSequence[0]
    if tpl.TemplateIdentifier != "1500" or tpl.MappingResource != "DCMR":
        fail("root template is not DCMR 1500")
    ev = sr.CurrentRequestedProcedureEvidenceSequence
    if len(ev) != 1 or ev[0].StudyInstanceUID != exp["study"]:
        fail("evidence does not name the source study")
    series = ev[0].ReferencedSeriesSequence
    if len(series) != 1 or series[0].SeriesInstanceUID != exp["series"]:
        fail("evidence does not name the source series")
    listed = {r.ReferencedSOPInstanceUID for r in series[0].ReferencedSOPSequence}
    if len(listed) != exp["instances"]:
        fail("evidence lists %d instances, source has %d" % (len(listed), exp["instances"]))

    containers = find(sr.ContentSequence, "DCM:126010")
    if len(containers) != 1:
        fail("%d Imaging Measurements containers" % len(containers))
    groups = [it for it in containers[0].get("ContentSequence", []) if concept(it) == "DCM:125007"]
    if len(groups) != len(exp["findings"]):
        fail("%d measurement groups, %d findings" % (len(groups), len(exp["findings"])))
    uids = set()
    for g, f in zip(groups, exp["findings"]):
        items = {}
        for it in g.ContentSequence:
            items.setdefault(concept(it), []).append(it)
        tid = f["tracking_id"]

        def one(name):
            if len(items.get(name, [])) != 1:
                fail("%s: %d items %s" % (tid, len(items.get(name, [])), name))
            return items[name][0]

        if one("DCM:112039").TextValue != tid:
            fail("tracking id %s" % one("DCM:112039").TextValue)
        uid = one("DCM:112040").UID
        if f["tracking_uid"] and uid != f["tracking_uid"]:
            fail("%s: tracking UID %s" % (tid, uid))
        uids.add(uid)
        if code(one("DCM:121071").ConceptCodeSequence) != f["type"]:
            fail("%s: finding type" % tid)
        category = items.get("SCT:276214006", [])
        got = code(category[0].ConceptCodeSequence) if category else ""
        if got != f["category"]:
            fail("%s: category %r, expected %r" % (tid, got, f["category"]))
        num = one("DCM:111012")
        mv = num.MeasuredValueSequence[0]
        if abs(float(mv.NumericValue) - f["score_percent"]) > 1e-9:
            fail("%s: score %s, expected %s" % (tid, mv.NumericValue, f["score_percent"]))
        if code(mv.MeasurementUnitsCodeSequence) != "UCUM:%":
            fail("%s: score units" % tid)
        surf = one("DCM:121231")
        if surf.ValueType != "SCOORD3D" or surf.GraphicType != "ELLIPSOID":
            fail("%s: volume surface is %s %s" % (tid, surf.ValueType, surf.GraphicType))
        if surf.ReferencedFrameOfReferenceUID != exp["frame_of_reference"]:
            fail("%s: frame of reference differs from the source" % tid)
        pts = [float(v) for v in surf.GraphicData]
        if len(pts) != 18 or max(abs(a - b) for a, b in zip(pts, f["points"])) > 1e-3:
            fail("%s: ellipsoid %s, expected %s" % (tid, pts, f["points"]))
        refs = set()
        for it in items.get("DCM:121233", []):
            r = it.ReferencedSOPSequence[0]
            frame = int(r.ReferencedFrameNumber) if "ReferencedFrameNumber" in r else 0
            refs.add((r.ReferencedSOPInstanceUID, frame))
            if r.ReferencedSOPInstanceUID not in listed:
                fail("%s: referenced image %s is not in the evidence" % (tid, r.ReferencedSOPInstanceUID))
        want = {(u, int(fr)) for u, fr in f["images"]}
        if refs != want:
            fail("%s: images %s, expected %s" % (tid, sorted(refs), sorted(want)))
    if len(uids) != len(groups):
        fail("tracking UIDs are not distinct")
    print("OK %d groups" % len(groups))


if __name__ == "__main__":
    main()
