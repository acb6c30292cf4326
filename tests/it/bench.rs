//! The benchmark script stays alive: its quick subset runs end to end against
//! real SZ3 and ZFP and writes a well-formed CSV, plots and report.
use super::common::*;

#[test]
fn bench_quick_produces_results_plots_and_report() {
    let d = tmp();
    let out = d.path().join("bench");
    let script = repo().join("tools/bench.py");
    let o = std::process::Command::new(python()).args([s(&script), "--bin", s(&bin()), "--out", s(&out), "--quick"]).output().expect("run bench.py");
    assert!(o.status.success(), "bench.py failed:\n{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for col in ["dataset", "map", "codec", "ratio", "wpsnr", "psnr", "max_err", "enc_mbs", "dec_mbs"] {
        assert!(header.contains(&col), "column {col} missing: {header:?}");
    }
    let codec = header.iter().position(|&c| c == "codec").unwrap();
    let ratio = header.iter().position(|&c| c == "ratio").unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    for c in ["idlat", "idlat+bound", "idlat+graded", "sz3", "zfp-accuracy", "zfp-rate"] {
        assert!(rows.iter().any(|r| r[codec] == c), "no {c} rows");
    }
    assert!(rows.iter().all(|r| r[ratio].parse::<f64>().is_ok_and(|v| v > 1.0)), "ratios must be numbers > 1");
    let md = std::fs::read_to_string(out.join("BENCHMARKS.md")).unwrap();
    assert!(md.contains("## Headline") && md.contains("| vortex |"), "{md}");
    assert!(md.contains("Error bounds held on 2 of 2"), "the bounded runs must hold their bound:\n{md}");
    let png = std::fs::read_dir(out.join("plots")).unwrap().filter_map(|e| e.ok()).find(|e| e.path().extension().is_some_and(|x| x == "png"));
    let png = png.expect("a plot").path();
    assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");
}
