use idlat::codec::profile::Profile;
use idlat::codec::train::*;
use idlat::volume::*;
fn main() {
    let dims=[96,96,96];
    let mut data=Vec::new();
    for z in 0..dims[2]{for y in 0..dims[1]{for x in 0..dims[0]{data.push(((x as f32)*0.15).sin()*((y as f32)*0.1).cos()+((z as f32)*0.2).sin());}}}
    let v=Volume::new(VolumeInfo::new("s",dims),data);
    let steps: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let prof = if std::env::args().nth(2).as_deref()==Some("paper") {Profile::paper()} else {Profile::fast()};
    let cfg=TrainConfig{profile:prof,steps,batch:8,blocks:64,lambda:30.0,a:6.0,lr:std::env::var("LR").map(|v|v.parse().unwrap()).unwrap_or(1e-3),lr_density:1e-2,seed:1,baseline:false,out:"/tmp/m.safetensors".into(),resume:None,validate_every:100,device:tch::Device::Cpu,recipe:"x".into()};
    let t=std::time::Instant::now();
    train(&[v],&cfg,|s,l,b,p,val|{eprintln!("{s} loss {l:.4} bpv {b:.3} psnr {p:.1} {:?} t={:.1}",val, t.elapsed().as_secs_f64());}).unwrap();
}
