//! `Error::PermissionDenied`: a segment created with mode 0600 by one user
//! cannot be opened (or removed) by another. The other user is a real
//! process: this test binary re-executed as `nobody` (so the test needs
//! root to switch users, and is skipped with a message otherwise).
#![cfg(not(loom))]

mod common;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use shm_bus_alloc::{Error, Segment};

const WATCHDOG: Duration = Duration::from_secs(60);
const ROLE_NAME: &str = "child_open_foreign_segment";

/// Child role (runs as `nobody`): tries `open`, `open_or_create` and
/// `unlink` on the parent's segment and prints one line per outcome.
/// `#[ignore]`d so it never runs as a normal test; the parent selects it
/// with `--include-ignored`.
#[test]
#[ignore = "helper process for permission_denied_for_another_user"]
fn child_open_foreign_segment() {
    let Some(seg_name) = child_param(ROLE_NAME, "SHMB_SEG") else {
        return;
    };
    let describe = |r: Result<Segment, Error>| match r {
        Ok(_) => "Ok".to_owned(),
        Err(Error::PermissionDenied { name, source }) => {
            format!("PermissionDenied({name}, {:?})", source.raw_os_error())
        }
        Err(e) => format!("other: {e:?}"),
    };
    println!("RESULT open {}", describe(Segment::open(&seg_name)));
    println!(
        "RESULT open_or_create {}",
        describe(Segment::open_or_create(&seg_name, 64 * 1024, 0o600))
    );
    let unlink = match Segment::unlink(&seg_name) {
        Ok(()) => "Ok".to_owned(),
        Err(Error::PermissionDenied { .. }) => "PermissionDenied".to_owned(),
        Err(e) => format!("other: {e:?}"),
    };
    println!("RESULT unlink {unlink}");
}

/// uid and gid of `nobody` from /etc/passwd (65534 if absent).
fn nobody() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"nobody") && f.len() > 3)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
        .unwrap_or((65534, 65534))
}

#[test]
fn permission_denied_for_another_user() {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        println!(
            "SKIPPED permission_denied_for_another_user: needs root to run a \
             process as another user (euid {euid} here)"
        );
        return;
    }
    let name = SegName::new("perm");
    let seg = Segment::create(&name.0, 64 * 1024, 0o600).unwrap();
    let (uid, gid) = nobody();
    assert_ne!(uid, 0);
    let spawned = ChildProc::try_spawn_with(ROLE_NAME, &[("SHMB_SEG", name.0.clone())], |cmd| {
        cmd.uid(uid)
            .gid(gid)
            .current_dir("/")
            .stdout(Stdio::piped());
    });
    let mut child = match spawned {
        Ok(c) => c,
        // No CAP_SETUID (e.g. root in a user namespace): cannot test here.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) => {
            println!(
                "SKIPPED permission_denied_for_another_user: cannot run a \
                 process as uid {uid}: {e}"
            );
            return;
        }
        Err(e) => panic!("spawn child as uid {uid}: {e}"),
    };
    let mut stdout = child.child.stdout.take().unwrap();
    child.wait_success(WATCHDOG);
    let mut out = String::new();
    stdout.read_to_string(&mut out).unwrap();
    let results: Vec<&str> = out
        .lines()
        // The harness prints "test NAME ... " before the child's first line.
        .filter_map(|l| Some(&l[l.find("RESULT ")? + "RESULT ".len()..]))
        .collect();
    let os_name = format!("/shm-bus.{}", name.0);
    let denied = format!("PermissionDenied({os_name}, Some({}))", libc::EACCES);
    assert_eq!(
        results,
        [
            format!("open {denied}"),
            format!("open_or_create {denied}"),
            "unlink PermissionDenied".to_owned(),
        ],
        "child output:\n{out}"
    );
    // The segment is untouched and still ours.
    drop(seg);
    Segment::open(&name.0).unwrap();
}
