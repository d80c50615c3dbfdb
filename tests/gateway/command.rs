//! The gateway as a command: `catty gateway` and the same binary installed as
//! `catty-gateway`, its flags, and its refusal to start without its secrets.

use std::process::Command;

fn catty() -> &'static str {
    env!("CARGO_BIN_EXE_catty")
}

#[test]
fn installed_as_catty_gateway_it_is_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("catty-gateway");
    std::os::unix::fs::symlink(catty(), &link).unwrap();
    let out = Command::new(&link)
        .arg("--help")
        .env_clear()
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    assert!(
        help.contains("Usage: catty-gateway") && help.contains("--listen"),
        "{help}"
    );
}

#[test]
fn without_its_database_or_key_it_does_not_start() {
    let run = |env: &[(&str, &str)]| {
        let out = (Command::new(catty()).arg("gateway").env_clear())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = run(&[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("CATTY_DATABASE_URL"), "{err}");
    let (code, err) = run(&[("CATTY_DATABASE_URL", "postgres://db/catty")]);
    assert_eq!(code, Some(2));
    assert!(err.contains("CATTY_GATEWAY_KEY"), "{err}");
}
