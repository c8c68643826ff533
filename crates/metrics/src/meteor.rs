//! METEOR 1.5 (Denkowski & Lavie 2014) through the jar pycocoevalcap bundles, driven as pycocoevalcap's
//! `meteor/meteor.py` does: `java -jar -Xmx2G meteor-1.5.jar - - -stdio -l en -norm` (working directory = the
//! jar's folder, where `data/paraphrase-en.gz` lies); per segment a line
//! `SCORE ||| ref_1 ||| … ||| ref_k ||| hyp` (the hypothesis with `|||` removed and double spaces halved) answered
//! by a statistics line; then `EVAL ||| stats_1 ||| … ||| stats_N`, answered by N segment scores and the corpus
//! score (computed by METEOR from the summed statistics, not a mean of segment scores).
//!
//! Inputs are the PTB-tokenised texts ([`crate::ptb::coco_tokenize`]), as in pycocoevalcap. There is no Rust
//! METEOR: without `java` or the jar the score is unavailable (`None`), never an estimate.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::error::MetricsError;

/// Environment variable naming the METEOR jar.
pub const JAR_ENV: &str = "DPFT_METEOR_JAR";
/// The jar's file name inside pycocoevalcap.
pub const JAR_NAME: &str = "meteor-1.5.jar";

/// Where METEOR comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MeteorMode {
    /// Use the jar given by `DPFT_METEOR_JAR`, else the one of pycocoevalcap in a Python virtual environment
    /// (`$DPFT_VENV`, `$VIRTUAL_ENV`, or `.venv` in the current folder, its ancestors, or the workspace root);
    /// unavailable if no jar or no `java` is found.
    #[default]
    Auto,
    /// Use this jar (an error if it does not exist; unavailable if `java` is missing).
    Jar(PathBuf),
    /// Do not compute METEOR.
    Disabled,
}

/// Outcome of looking for METEOR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeteorSetup {
    /// `java` and the jar were found.
    Available { java: PathBuf, jar: PathBuf },
    /// METEOR will be reported as `None`; the string says why.
    Unavailable(String),
}

/// Find `java` on `PATH` (or `$JAVA_HOME/bin/java`).
pub fn find_java() -> Option<PathBuf> {
    let exe = if cfg!(windows) { "java.exe" } else { "java" };
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(exe)).find(|p| p.is_file()));
    on_path.or_else(|| {
        let p = PathBuf::from(std::env::var_os("JAVA_HOME")?).join("bin").join(exe);
        p.is_file().then_some(p)
    })
}

/// pycocoevalcap's METEOR jar inside a virtual environment folder (`lib*/python3*/site-packages/...`).
fn jar_in_venv(venv: &Path) -> Option<PathBuf> {
    for lib in ["lib", "lib64", "Lib"] {
        let Ok(entries) = std::fs::read_dir(venv.join(lib)) else { continue };
        let mut pythons: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        pythons.sort();
        for py in pythons {
            let jar = py.join("site-packages").join("pycocoevalcap").join("meteor").join(JAR_NAME);
            if jar.is_file() {
                return Some(jar);
            }
        }
        // Windows layout: Lib/site-packages directly.
        let jar = venv.join(lib).join("site-packages").join("pycocoevalcap").join("meteor").join(JAR_NAME);
        if jar.is_file() {
            return Some(jar);
        }
    }
    None
}

/// Search for the jar as [`MeteorMode::Auto`] describes; the error says where it looked.
pub fn find_jar() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(JAR_ENV) {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(format!("{JAR_ENV}={} is not a file", p.display())) };
    }
    let mut venvs: Vec<PathBuf> =
        ["DPFT_VENV", "VIRTUAL_ENV"].iter().filter_map(std::env::var_os).map(PathBuf::from).collect();
    if let Ok(cwd) = std::env::current_dir() {
        venvs.extend(cwd.ancestors().map(|d| d.join(".venv")));
    }
    // The workspace root of this crate (crates/metrics/../..), for binaries run from elsewhere.
    venvs.extend(Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).map(|d| d.join(".venv")));
    venvs.iter().find_map(|v| jar_in_venv(v)).ok_or_else(|| {
        format!("no {JAR_NAME}: set {JAR_ENV} or install pycocoevalcap in the Python venv (DPFT_VENV or .venv)")
    })
}

/// Resolve a [`MeteorMode`]. An explicit jar that does not exist is an error; anything else missing makes METEOR
/// unavailable.
pub fn locate(mode: &MeteorMode) -> Result<MeteorSetup, MetricsError> {
    let jar = match mode {
        MeteorMode::Disabled => return Ok(MeteorSetup::Unavailable("METEOR disabled by the caller".into())),
        MeteorMode::Jar(p) => {
            if !p.is_file() {
                return Err(MetricsError::Meteor {
                    jar: p.clone(),
                    message: "no such file: give the path of pycocoevalcap's meteor/meteor-1.5.jar".into(),
                });
            }
            p.clone()
        }
        MeteorMode::Auto => match find_jar() {
            Ok(p) => p,
            Err(why) => return Ok(MeteorSetup::Unavailable(why)),
        },
    };
    match find_java() {
        Some(java) => Ok(MeteorSetup::Available { java, jar }),
        None => Ok(MeteorSetup::Unavailable("no `java` on PATH or in JAVA_HOME: METEOR 1.5 needs a JVM".into())),
    }
}

/// A running METEOR 1.5 process (one JVM, reusable for several systems).
pub struct Meteor {
    jar: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<String>>,
}

impl std::fmt::Debug for Meteor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meteor").field("jar", &self.jar).finish_non_exhaustive()
    }
}

impl Meteor {
    /// Start `java -jar -Xmx2G <jar> - - -stdio -l en -norm` in the jar's folder.
    pub fn start(java: &Path, jar: &Path) -> Result<Self, MetricsError> {
        let err = |message: String| MetricsError::Meteor { jar: jar.to_path_buf(), message };
        let dir = jar.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let file = jar.file_name().ok_or_else(|| err("not a file path".into()))?;
        let mut child = Command::new(java)
            .args(["-jar", "-Xmx2G"])
            .arg(file)
            .args(["-", "-", "-stdio", "-l", "en", "-norm"])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| err(format!("cannot start {}: {e}", java.display())))?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().ok_or_else(|| err("no stdout pipe".into()))?);
        // Drain stderr so that a chatty JVM never blocks; keep the tail for error messages.
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut s) = sink.lock() {
                        s.push_str(&String::from_utf8_lossy(&buf[..n]));
                        if s.len() > 8000 {
                            let cut = s.len() - 4000;
                            let cut = (cut..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(s.len());
                            s.drain(..cut);
                        }
                    }
                }
            });
        }
        Ok(Meteor { jar: jar.to_path_buf(), child, stdin, stdout, stderr })
    }

    fn fail(&self, what: &str) -> MetricsError {
        let tail = self.stderr.lock().map(|s| s.trim().to_string()).unwrap_or_default();
        MetricsError::Meteor {
            jar: self.jar.clone(),
            message: format!("{what}; java stderr: {}", if tail.is_empty() { "(empty)" } else { &tail }),
        }
    }

    fn write_line(&mut self, line: &str) -> Result<(), MetricsError> {
        let ok = match self.stdin.as_mut() {
            Some(stdin) => {
                stdin.write_all(line.as_bytes()).and_then(|_| stdin.write_all(b"\n")).and_then(|_| stdin.flush())
            }
            None => Err(std::io::Error::other("stdin closed")),
        };
        ok.map_err(|e| self.fail(&format!("writing to METEOR failed ({e})")))
    }

    fn read_line(&mut self) -> Result<String, MetricsError> {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) => Err(self.fail("METEOR closed its output")),
            Ok(_) => Ok(line.trim().to_string()),
            Err(e) => Err(self.fail(&format!("reading from METEOR failed ({e})"))),
        }
    }

    /// Corpus METEOR and segment scores of tokenised `candidates` against tokenised `references`.
    pub fn score(
        &mut self,
        candidates: &[String],
        references: &[Vec<String>],
    ) -> Result<(f64, Vec<f64>), MetricsError> {
        assert_eq!(candidates.len(), references.len(), "one reference list per candidate");
        let mut eval_line = String::from("EVAL");
        for (hyp, refs) in candidates.iter().zip(references) {
            let hyp = hyp.replace("|||", "").replace("  ", " ");
            let line = format!("SCORE ||| {} ||| {}", refs.join(" ||| "), hyp);
            self.write_line(&line)?;
            let stats = self.read_line()?;
            eval_line.push_str(" ||| ");
            eval_line.push_str(&stats);
        }
        self.write_line(&eval_line)?;
        let mut segments = Vec::with_capacity(candidates.len());
        for _ in 0..candidates.len() {
            let l = self.read_line()?;
            segments.push(l.parse::<f64>().map_err(|_| self.fail(&format!("unexpected segment score line {l:?}")))?);
        }
        let l = self.read_line()?;
        let total = l.parse::<f64>().map_err(|_| self.fail(&format!("unexpected corpus score line {l:?}")))?;
        Ok((total, segments))
    }
}

impl Drop for Meteor {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
