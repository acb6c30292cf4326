//! The library pack API (`idlat::pack`): the same bytes as `idlat pack`, whatever
//! the inputs (files or volumes in memory) and the sink (a file or a writer).

use super::common::*;
use idlat::pack::{Event, Inputs, PackError, Plan, PlanError, Progress, Settings, Sink, Target};

fn settings() -> Settings {
    Settings { importance: "value:>5".into(), target: Some(Target::Ratio(60.0)), tile: 16, ..Settings::default() }
}

/// Counts what a pack tells its progress.
#[derive(Default)]
struct Count {
    begun: Vec<(String, u64)>,
    advanced: u64,
    ended: usize,
    volumes: Vec<String>,
    targets: usize,
}

impl Progress for Count {
    fn begin(&mut self, volume: &str, blocks: u64) {
        self.begun.push((volume.to_string(), blocks));
    }
    fn advance(&mut self, blocks: u64) {
        self.advanced += blocks;
    }
    fn end(&mut self) {
        self.ended += 1;
    }
    fn event(&mut self, e: Event<'_>) {
        match e {
            Event::Volume(v) => self.volumes.push(v.name.clone()),
            Event::Target { .. } => self.targets += 1,
            _ => {}
        }
    }
}

#[test]
fn the_library_packs_the_bytes_of_the_cli_from_files_volumes_and_writers() {
    let t = tmp();
    let raw = sample(t.path(), "vortex", "40x32x24", 1);
    let cli = t.path().join("cli.idl");
    ok(&["pack", s(&raw), "--dims", "40x32x24", "--importance", "value:>5", "--target-ratio", "60", "--tile", "16", "-o", s(&cli), "--quiet"]);
    let want = std::fs::read(&cli).unwrap();

    let read = idlat::io::ReadOptions { dims: Some([40, 32, 24]), ..Default::default() };
    let plan = Plan::new(Settings { read: read.clone(), ..settings() }).unwrap();
    let from_files = t.path().join("files.idl");
    let mut count = Count::default();
    let report = plan.pack_with(Inputs::files([s(&raw)]), Sink::from(from_files.as_path()), &mut count).unwrap();
    assert_eq!(std::fs::read(&from_files).unwrap(), want);
    assert_eq!(report.file_bytes, want.len() as u64);
    let v = &report.volumes[0];
    assert_eq!((v.name.as_str(), v.dims, v.input_bytes), ("vortex1", [40, 32, 24], 40 * 32 * 24 * 4));
    assert!(report.quality.is_none() && report.leader && v.stored_bytes < report.file_bytes);
    // Rate control aims at the target; tiny volumes land near it, not on it.
    assert!(report.ratio() > 30.0, "ratio {}", report.ratio());
    // 3 x 2 x 2 tiles of 16.
    assert_eq!((count.begun.clone(), count.advanced, count.ended), (vec![("vortex1".to_string(), 12)], 12, 1));
    assert_eq!((count.volumes.clone(), count.targets), (vec!["vortex1".to_string()], 1));

    // The same volume in memory, into a writer.
    let vol = idlat::io::read_volume(&raw, &read).unwrap();
    let mut bytes = Vec::new();
    let report = Plan::new(settings()).unwrap().pack(Inputs::from(vec![vol.clone()]), Sink::Writer(&mut bytes)).unwrap();
    assert_eq!(bytes, want);
    assert_eq!(report.volumes[0].name, "vortex1");

    // An existing file is replaced only when asked; evaluation measures the result.
    let err = plan.pack(Inputs::files([s(&raw)]), Sink::from(from_files.as_path())).unwrap_err();
    assert!(matches!(err, PackError::Io(idlat::io::IoError::Exists { .. })), "{err}");
    let plan = Plan::new(Settings { eval: true, ..settings() }).unwrap();
    let report = plan.pack(Inputs::from(vec![vol]), Sink::File { path: from_files.clone(), overwrite: true }).unwrap();
    assert_eq!(std::fs::read(&from_files).unwrap(), want);
    let q = report.volumes[0].quality.unwrap();
    assert!(q.psnr > 20.0 && q.psnr == report.quality.unwrap().psnr, "{q:?}");
}

#[test]
fn plans_refuse_settings_that_cannot_pack() {
    let bad = |s: Settings| Plan::new(s).unwrap_err();
    assert!(matches!(bad(Settings { step: Some(0.0), ..Settings::default() }), PlanError::Step(_)));
    assert!(matches!(bad(Settings { tile: 4, ..Settings::default() }), PlanError::Tile(4)));
    assert!(matches!(bad(Settings { importance: "bogus:1".into(), ..Settings::default() }), PlanError::Importance(_)));
    assert!(matches!(bad(Settings { step: Some(0.01), target: Some(Target::Ratio(10.0)), ..Settings::default() }), PlanError::StepAndTarget));
    let bound = idlat::pack::ErrorBound { tolerance: idlat::pack::Tolerance::Abs(0.1), min_importance: 2.0, graded: false, max: None };
    assert!(matches!(bad(Settings { bound: Some(bound), ..Settings::default() }), PlanError::BoundWhere(_)));
    // A lossy pack of a volume in memory refuses what a file read refuses.
    let mut vol = idlat::sample::generate(idlat::sample::Kind::Nyx, [8, 8, 8], 1, 0);
    vol.data[3] = f32::NAN;
    let t = tmp();
    let err = Plan::new(Settings::default()).unwrap().pack(Inputs::from(vec![vol]), Sink::from(t.path().join("x.idl"))).unwrap_err();
    assert!(err.to_string().contains("non-finite"), "{err}");
    assert!(!t.path().join("x.idl").exists());
}
