//! `goaway-lab --target https://…`: the binary probes a TLS server (ALPN
//! `h2`) that drains every connection after 10 requests, trusting its
//! self-signed certificate through `--ca-file`.

use std::process::Command;
use std::time::Duration;

use h2_frame_server::{FrameServer, Reason};

const REQUESTS: u64 = 60;

/// Answers 10 requests a connection, then `GOAWAY(NO_ERROR)` naming the
/// last: the client's streams past it are refused.
async fn draining_tls_server() -> FrameServer {
    FrameServer::start_tls(|mut conn| async move {
        conn.handshake().await?;
        let mut answered = 0;
        while let Some(stream) = conn.next_request().await? {
            conn.respond(stream, b"ok").await?;
            answered += 1;
            if answered == 10 {
                conn.go_away(stream, Reason::NO_ERROR).await?;
                return conn.drain().await;
            }
        }
        Ok(())
    })
    .await
    .expect("bind 127.0.0.1")
}

/// Runs the lab with `args`; its exit status, stdout and stderr.
async fn lab(args: Vec<String>) -> (bool, String, String) {
    let run = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_goaway-lab"))
            .args(&args)
            .output()
            .expect("the lab runs")
    });
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the lab ends within 120 s")
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_target_is_probed_on_both_stacks() {
    let server = draining_tls_server().await;
    let dir = std::env::temp_dir().join(format!("goaway-lab-target-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, server.certificate_pem().expect("a TLS server")).unwrap();
    let url = format!("https://localhost:{}/", server.addr().port());
    let args = ["--target", &url, "--ca-file", ca.to_str().unwrap()]
        .into_iter()
        .map(String::from)
        .chain(
            [
                "--requests",
                &REQUESTS.to_string(),
                "--concurrency",
                "8",
                "--json",
            ]
            .map(String::from),
        )
        .collect();
    let (ok, stdout, stderr) = lab(args).await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "the lab failed: {stderr}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout).expect("JSON rows");
    assert_eq!(rows.len(), 6, "two stacks, three modes: {stdout}");
    let errors = |row: &serde_json::Value| -> u64 {
        row["errors"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum()
    };
    for row in &rows {
        assert_eq!(row["requests"], REQUESTS, "{row}");
        let causes = row["causes"].to_string();
        assert!(
            !causes.contains("connect"),
            "TLS or connect failures: {row}"
        );
        if row["mode"] == "hyper-classify" {
            assert_eq!(errors(row), 0, "{row}");
            assert!(
                row["retries"].as_u64().unwrap() > 0,
                "nothing refused: {row}"
            );
        }
    }
    assert!(
        rows.iter()
            .any(|row| row["mode"] == "Bare" && errors(row) > 0),
        "the drain failed no bare request: the test tested nothing: {stdout}"
    );
}

#[tokio::test]
async fn a_ca_file_without_an_https_target_is_a_clear_error() {
    let args = ["--target", "http://127.0.0.1:1/", "--ca-file", "ca.pem"].map(String::from);
    let (ok, _, stderr) = lab(args.to_vec()).await;
    assert!(!ok);
    assert!(
        stderr.contains("--ca-file is for https targets"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_unreadable_ca_file_is_a_clear_error() {
    let args = [
        "--target",
        "https://127.0.0.1:1/",
        "--ca-file",
        "/nonexistent/ca.pem",
    ];
    let (ok, _, stderr) = lab(args.map(String::from).to_vec()).await;
    assert!(!ok);
    assert!(stderr.contains("--ca-file /nonexistent/ca.pem"), "{stderr}");
}
