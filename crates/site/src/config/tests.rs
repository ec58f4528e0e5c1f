use super::*;

fn invalid_field(text: &str) -> String {
    match Config::from_toml(text) {
        Err(ConfigError::Invalid { field, .. }) => field,
        other => panic!("expected an invalid-field error, got {other:?}"),
    }
}

const MINIMAL: &str = r#"
[proxy]
account = "site"
[[pools]]
url = "stratum+tcp://127.0.0.1:3333"
"#;

#[test]
fn shipped_default_file_validates() {
    let cfg = Config::from_toml(DEFAULT_TOML).expect("config/hashgate.toml must validate");
    assert_eq!(cfg.pools.len(), 2);
    assert_eq!(cfg.pools[0].name, "primary");
    assert_eq!(cfg.pools[0].user, "siteaccount");
    assert_eq!(cfg.proxy.max_line_bytes.get(), 65536);
}

#[test]
fn minimal_file_gets_documented_defaults() {
    let cfg = Config::from_toml(MINIMAL).unwrap();
    assert_eq!(cfg.proxy.listen, "0.0.0.0:3333".parse().unwrap());
    assert_eq!(cfg.proxy.max_connections.get(), 20_000);
    assert_eq!(cfg.proxy.setup_timeout, Duration::from_secs(10));
    assert_eq!(cfg.proxy.max_miner_extranonce2, 8);
    assert_eq!(cfg.proxy.upstream_worker, UpstreamWorker::Account);
    assert_eq!(cfg.proxy.upstream_shares_per_sec, 0.5);
    assert_eq!(cfg.pools[0].name, "pool0");
    assert_eq!(cfg.pools[0].password, "x");
    assert_eq!(cfg.vardiff.target_interval, Duration::from_secs(5));
    assert_eq!(cfg.failover.silence_timeout, Duration::from_secs(3));
    assert_eq!(cfg.failover.reconnect_min, Duration::from_millis(250));
}

#[test]
fn unknown_field_is_refused_with_its_name() {
    let err = Config::from_toml("[proxy]\nlisten_port = 3333\n").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("listen_port"), "{text}");
}

#[test]
fn bad_fields_are_named() {
    let cases = [
        (
            "[proxy]\nlisten = \"nowhere\"\naccount=\"a\"\n[[pools]]\nurl=\"h:1\"",
            "proxy.listen",
        ),
        (
            "[proxy]\naccount = \"a\"\nmax_connections = 0\n[[pools]]\nurl=\"h:1\"",
            "proxy.max_connections",
        ),
        (
            "[proxy]\naccount = \"a b\"\n[[pools]]\nurl=\"h:1\"",
            "proxy.account",
        ),
        (
            "[proxy]\naccount = \"a\"\nupstream_worker = \"each\"\n[[pools]]\nurl=\"h:1\"",
            "proxy.upstream_worker",
        ),
        (
            "[proxy]\naccount = \"a\"\nmax_miner_extranonce2 = 1\n[[pools]]\nurl=\"h:1\"",
            "proxy.max_miner_extranonce2",
        ),
        (
            "[proxy]\naccount = \"a\"\nupstream_shares_per_sec = -0.5\n[[pools]]\nurl=\"h:1\"",
            "proxy.upstream_shares_per_sec",
        ),
        (
            "[proxy]\naccount = \"a\"\nmax_line_bytes = 100\n[[pools]]\nurl=\"h:1\"",
            "proxy.max_line_bytes",
        ),
        (
            "[proxy]\naccount = \"a\"\nsetup_timeout_secs = -1\n[[pools]]\nurl=\"h:1\"",
            "proxy.setup_timeout_secs",
        ),
        ("[proxy]\naccount = \"a\"\n", "pools"),
        (
            "[proxy]\naccount = \"a\"\n[[pools]]\nname=\"p\"",
            "pools[0].url",
        ),
        (
            "[proxy]\naccount = \"a\"\n[[pools]]\nurl=\"http://h:1\"",
            "pools[0].url",
        ),
        (
            "[proxy]\naccount = \"a\"\n[[pools]]\nurl=\"h:1\"\n[[pools]]\nurl=\"h:99999\"",
            "pools[1].url",
        ),
        ("[[pools]]\nurl=\"h:1\"", "pools[0].user"),
        (
            "[proxy]\naccount = \"a\"\n[[pools]]\nname=\"x\"\nurl=\"h:1\"\n[[pools]]\nname=\"x\"\nurl=\"h:2\"",
            "pools[1].name",
        ),
        (
            "[proxy]\naccount = \"a\"\n[[pools]]\nurl=\"h:1\"\n[vardiff]\nmin_difficulty = 10\nmax_difficulty = 1",
            "vardiff.min_difficulty",
        ),
        (
            "[proxy]\naccount = \"a\"\n[[pools]]\nurl=\"h:1\"\n[vardiff]\nmin_difficulty = 0",
            "vardiff.min_difficulty",
        ),
        (
            "[proxy]\naccount = \"a\"\n[[pools]]\nurl=\"h:1\"\n[failover]\nreconnect_min_secs = 60",
            "failover.reconnect_min_secs",
        ),
    ];
    for (text, field) in cases {
        assert_eq!(invalid_field(text), field, "for config:\n{text}");
    }
}

#[test]
fn pool_urls_parse() {
    let ok = [
        ("stratum+tcp://pool.example:3333", "pool.example", 3333),
        ("tcp://10.0.0.1:4444", "10.0.0.1", 4444),
        ("pool.example:25", "pool.example", 25),
        ("stratum+tcp://[::1]:3333/", "::1", 3333),
    ];
    for (text, host, port) in ok {
        let url: PoolUrl = text.parse().unwrap();
        assert_eq!((url.host.as_str(), url.port), (host, port), "{text}");
        assert!(!url.tls, "{text}");
    }
    for tls in [
        "stratum+ssl://pool.example:443",
        "stratum+tls://pool.example:443",
    ] {
        let url: PoolUrl = tls.parse().unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.tls),
            ("pool.example", 443, true)
        );
        assert_eq!(url.to_string(), "stratum+ssl://pool.example:443");
    }
    assert_eq!(
        "stratum+tcp://[::1]:3333"
            .parse::<PoolUrl>()
            .unwrap()
            .authority(),
        "[::1]:3333"
    );
    for bad in [
        "http://h:1",
        "h",
        ":3333",
        "h:0",
        "h:x",
        "[::1:3",
        "stratum+tcp//pool.example:3333",
        "stratum+tcp:/pool.example:3333",
        "pool..example:3333",
        "pool example:3333",
        "[pool.example]:3333",
        "user@pool.example:3333",
    ] {
        assert!(bad.parse::<PoolUrl>().is_err(), "{bad} should be refused");
    }
}

#[test]
fn sv2_pool_urls_carry_the_authority_key() {
    let key = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72";
    let text = format!("stratum2+tcp://127.0.0.1:34254/{key}");
    let url: PoolUrl = text.parse().unwrap();
    assert_eq!((url.host.as_str(), url.port), ("127.0.0.1", 34254));
    assert_eq!(
        url.sv2.as_ref().map(ToString::to_string).as_deref(),
        Some(key)
    );
    assert_eq!(url.to_string(), text, "shown as written");
    assert!(
        "stratum+tcp://127.0.0.1:3333"
            .parse::<PoolUrl>()
            .unwrap()
            .sv2
            .is_none()
    );
    for (bad, why) in [
        ("stratum2+tcp://127.0.0.1:34254", "authority public key"),
        ("stratum2+tcp://127.0.0.1:34254/", "empty"),
        (
            "stratum2+tcp://127.0.0.1:34254/9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH7",
            "checksum",
        ),
        (
            "stratum2+tcp://127.0.0.1/9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72",
            "port",
        ),
    ] {
        let err = bad.parse::<PoolUrl>().expect_err(bad);
        assert!(err.contains(why), "{bad}: {err}");
    }
}

#[test]
fn power_section_is_validated_with_the_rest() {
    let power = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/power-example.toml"
    ))
    .unwrap();
    // The standalone example's top-level keys become `[power.*]` inside hashgate.toml.
    let nested = power
        .lines()
        .map(|l| {
            let t = l.trim_start();
            if let Some(rest) = t.strip_prefix("[[") {
                format!("[[power.{rest}")
            } else if let Some(rest) = t.strip_prefix('[') {
                format!("[power.{rest}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let text = format!("{MINIMAL}\n{nested}\n");
    let cfg = Config::from_toml(&text).unwrap();
    let power = cfg.power.expect("power section");
    assert!(!power.miners.is_empty());

    let bad = text.replacen("budget_kw = 1500.0", "budget_kw = -1.0", 1);
    let err = Config::from_toml(&bad).unwrap_err();
    assert!(err.to_string().starts_with("power:"), "{err}");
    assert!(
        err.to_string().contains("c01"),
        "names the container: {err}"
    );
}

#[test]
fn pool_password_is_not_in_debug_output() {
    let cfg = RawConfig::parse(
        r#"
        [proxy]
        account = "site"
        [[pools]]
        url = "stratum+tcp://pool.example:3333"
        password = "hunter2-secret"
    "#,
    )
    .unwrap()
    .validate()
    .unwrap();
    let shown = format!("{cfg:?}");
    assert!(!shown.contains("hunter2-secret"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
}

#[test]
fn a_url_missing_its_colon_is_refused_naming_the_field() {
    let text = "[proxy]\naccount = \"a\"\n[[pools]]\nurl = \"stratum+tcp//pool.example:3333\"";
    let err = Config::from_toml(text).unwrap_err().to_string();
    assert!(err.starts_with("pools[0].url: "), "{err}");
    assert!(err.contains("not a host name or IP address"), "{err}");
    assert!(err.contains("stratum+tcp://host:port"), "{err}");
}

#[test]
fn parse_errors_read_plainly_with_the_path() {
    let cases = [
        (
            "[proxy]\nmax_connections = -5\n",
            "proxy.max_connections: -5 was given; expected a whole number, 0 or more (line 2)",
        ),
        (
            "[proxy]\nmax_miner_extranonce2 = 300\n",
            "proxy.max_miner_extranonce2: 300 was given; expected a whole number from 0 to 255 (line 2)",
        ),
        (
            "[proxy]\nlisten = 3333\n",
            "proxy.listen: 3333 was given; expected a quoted string (line 2)",
        ),
        (
            "[[pools]]\nurl = \"h:1\"\n[[pools]]\nurl = \"h:2\"\npassword = 7\n",
            "pools[1].password: 7 was given; expected a quoted string (line 5)",
        ),
        (
            "[failover]\nsilence_timeout_secs = true\n",
            "failover.silence_timeout_secs: expected a number of seconds or a duration like \"30s\" (line 2)",
        ),
        (
            "[failover]\nsilence_timeout_secs = \"3 days\"\n",
            "failover.silence_timeout_secs: \"3 days\" is not a duration: the units are ms, s, m and h (write e.g. 500ms, 30s, 2m, 1h30m, or plain seconds) (line 2)",
        ),
    ];
    for (text, expected) in cases {
        let err = Config::from_toml(text).unwrap_err().to_string();
        assert_eq!(err, expected, "for:\n{text}");
    }
    let unknown = Config::from_toml("[proxy]\nlisten_port = 3333\n")
        .unwrap_err()
        .to_string();
    assert!(
        unknown.starts_with("proxy.listen_port: unknown key; the keys here are listen, "),
        "{unknown}"
    );
    let syntax = Config::from_toml("[proxy\n").unwrap_err().to_string();
    assert!(syntax.starts_with("file: not valid TOML"), "{syntax}");
}

#[test]
fn seconds_fields_take_numbers_or_the_flags_duration_syntax() {
    let cfg = Config::from_toml(&format!(
        "{MINIMAL}\n[failover]\nsilence_timeout_secs = \"1500ms\"\nreconnect_max_secs = \"2m\"\nfailback_after_secs = 7\nsubmit_timeout_secs = 2.5\n"
    ))
    .unwrap();
    assert_eq!(cfg.failover.silence_timeout, Duration::from_millis(1500));
    assert_eq!(cfg.failover.reconnect_max, Duration::from_secs(120));
    assert_eq!(cfg.failover.failback_after, Duration::from_secs(7));
    assert_eq!(cfg.failover.submit_timeout, Duration::from_millis(2500));
    let zero = Config::from_toml(&format!(
        "{MINIMAL}\n[vardiff]\ntarget_interval_secs = \"0s\"\n"
    ));
    assert!(
        zero.unwrap_err()
            .to_string()
            .starts_with("vardiff.target_interval_secs: "),
        "a zero duration names its field"
    );
}

#[test]
fn a_reload_names_what_needs_a_restart_and_describes_pool_changes() {
    let running = Config::from_toml(MINIMAL).unwrap();
    let same = Config::from_toml(MINIMAL).unwrap();
    assert!(restart_needed(&running, &same).is_empty());
    let file = Config::from_toml(&format!(
        "{MINIMAL}\n[vardiff]\nmin_difficulty = 2\n[failover]\nreconnect_max_secs = 9\nreject_streak = 3\n\
         [http]\nlisten = \"127.0.0.1:1\"\n[[pools]]\nname = \"backup\"\nurl = \"stratum+tcp://b.example:3333\"\n"
    ))
    .unwrap();
    assert_eq!(
        restart_needed(&running, &file),
        ["vardiff", "failover.reject_streak", "http.listen"]
    );
    let (old, new) = (
        crate::upstream::PoolSet::of(&running),
        crate::upstream::PoolSet::of(&file),
    );
    assert_eq!(
        old.describe_change(&new),
        ["pool \"backup\" added", "failover timing"]
    );
    let mut reordered = new.clone();
    reordered.pools.reverse();
    assert_eq!(
        new.describe_change(&reordered),
        ["pool order now backup, pool0"]
    );
    let report = ReloadReport {
        applied: vec!["pool \"backup\" added".into()],
        needs_restart: vec!["http.listen".into()],
    };
    assert_eq!(
        report.summary(),
        "pool \"backup\" added; needs a restart: http.listen"
    );
    assert_eq!(ReloadReport::default().summary(), "nothing changed");
}

#[test]
fn admin_listen_is_an_address_or_absent() {
    let cfg = Config::from_toml(&format!(
        "{MINIMAL}\n[http]\nadmin_listen = \"127.0.0.1:9185\"\n"
    ))
    .unwrap();
    assert_eq!(
        cfg.http.admin_listen,
        Some("127.0.0.1:9185".parse().unwrap())
    );
    assert_eq!(Config::from_toml(MINIMAL).unwrap().http.admin_listen, None);
    let bad = invalid_field(&format!("{MINIMAL}\n[http]\nadmin_listen = \"loopback\"\n"));
    assert_eq!(bad, "http.admin_listen");
}

#[test]
fn the_commented_ledger_section_of_the_default_file_validates() {
    let text: String = DEFAULT_TOML
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.starts_with("[ledger]")
                    || rest.starts_with("path = ")
                    || rest.starts_with("retention_days")
                    || rest.starts_with("flush_secs") =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let cfg = Config::from_toml(&text).expect("the [ledger] example must validate");
    let ledger = cfg.ledger.expect("the example has a [ledger] section");
    assert_eq!(
        ledger.path,
        std::path::PathBuf::from("/var/lib/hashgate/ledger.sqlite")
    );
    assert_eq!((ledger.retention_days, ledger.flush.as_secs()), (400, 60));
}

#[test]
fn a_reload_names_settings_read_only_at_start_even_without_their_own_line() {
    let running = Config::from_toml(MINIMAL).unwrap();
    let with = |extra: &str| {
        Config::from_toml(&MINIMAL.replace(
            "account = \"site\"",
            &format!("account = \"site\"\n{extra}"),
        ))
        .unwrap()
    };
    assert_eq!(
        restart_needed(&running, &with("upstream_shares_per_sec = 2")),
        ["proxy.upstream_shares_per_sec"]
    );
    let ledger = Config::from_toml(&format!(
        "{MINIMAL}\n[ledger]\npath = \"/tmp/hashgate-reload-test.sqlite\"\n"
    ))
    .unwrap();
    assert_eq!(restart_needed(&running, &ledger), ["ledger"]);
}

#[test]
fn tls_pool_options_are_checked_and_only_for_tls_pools() {
    let pool = |lines: &str| format!("[proxy]\naccount = \"site\"\n[[pools]]\n{lines}\n");
    let cfg = Config::from_toml(&pool("url = \"stratum+ssl://pool.example:443\"")).unwrap();
    let tls = cfg.pools[0]
        .tls
        .as_ref()
        .expect("a TLS client for a TLS pool");
    assert_eq!(tls.settings.roots, crate::tls::TlsRoots::Bundled);
    assert!(Config::from_toml(MINIMAL).unwrap().pools[0].tls.is_none());

    let tcp = "url = \"stratum+tcp://pool.example:3333\"";
    for field in ["tls_roots = \"both\"", "tls_server_name = \"x\""] {
        assert_eq!(
            invalid_field(&pool(&format!("{tcp}\n{field}"))),
            format!("pools[0].{}", field.split(' ').next().unwrap()),
        );
    }
    let ssl = "url = \"stratum+ssl://pool.example:443\"";
    assert_eq!(
        invalid_field(&pool(&format!("{ssl}\ntls_roots = \"mozilla\""))),
        "pools[0].tls_roots"
    );
    assert_eq!(
        invalid_field(&pool(&format!("{ssl}\ntls_pin_sha256 = \"abcd\""))),
        "pools[0].tls_pin_sha256"
    );
    let missing = concat!(env!("CARGO_MANIFEST_DIR"), "/no-such-ca.pem");
    assert_eq!(
        invalid_field(&pool(&format!("{ssl}\ntls_ca_file = \"{missing}\""))),
        "pools[0].tls_ca_file"
    );
    assert_eq!(
        invalid_field(&pool(&format!("{ssl}\ntls_server_name = \"not a name\""))),
        "pools[0].tls_server_name"
    );
}

const POOL: &str =
    "[proxy]\naccount = \"site\"\n[[pools]]\nurl = \"stratum+tcp://127.0.0.1:3333\"\n";

#[test]
fn without_listeners_the_proxy_listen_is_the_one_default_listener() {
    let cfg = Config::from_toml(&format!(
        "{POOL}[vardiff]\nmin_difficulty = 8\nmax_difficulty = 4096\n"
    ))
    .unwrap();
    assert!(cfg.listeners.is_empty());
    let listeners = cfg.listeners();
    assert_eq!(listeners.len(), 1);
    let l = &listeners[0];
    assert_eq!(&*l.name, "default");
    assert_eq!(l.listen, cfg.proxy.listen);
    assert_eq!((l.min_difficulty, l.max_difficulty), (8.0, 4096.0));
    // proxy.initial_difficulty's default 1,024 is inside the range; a start outside
    // moves into it, as it always did.
    assert_eq!(l.initial_difficulty, 1024.0);
    assert_eq!(l.max_connections, cfg.proxy.max_connections);
    assert_eq!((l.pool_group.clone(), l.tls.clone()), (None, None));
    let low = Config::from_toml(
        "[proxy]\naccount = \"s\"\ninitial_difficulty = 1\n[[pools]]\nurl = \"h:1\"\n[vardiff]\nmin_difficulty = 8\n",
    )
    .unwrap();
    assert_eq!(low.listeners()[0].initial_difficulty, 8.0);
}

#[test]
fn listeners_take_their_own_settings_and_fall_back_to_the_site_ones() {
    let cfg = Config::from_toml(
        "[proxy]\naccount = \"s\"\nmax_connections = 500\ninitial_difficulty = 64\n\
         [[pools]]\nurl = \"h:1\"\n[vardiff]\nmin_difficulty = 1\nmax_difficulty = 1000000\n\
         [[listeners]]\nname = \"home\"\nlisten = \"0.0.0.0:3333\"\nmin_difficulty = 16\nmax_difficulty = 4096\ninitial_difficulty = 256\nmax_connections = 100\n\
         [[listeners]]\nname = \"s21\"\nlisten = \"0.0.0.0:3334\"\nmin_difficulty = 65536\npool_group = \"fleet\"\n\
         [[pool_groups]]\nname = \"fleet\"\npools = [\"pool0\"]\n\
         [[listeners]]\nname = \"tls\"\nlisten = \"127.0.0.1:0\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n\
         [[listeners]]\nname = \"tls2\"\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let l = cfg.listeners();
    assert_eq!(l.len(), 4);
    assert_eq!(
        (
            l[0].min_difficulty,
            l[0].max_difficulty,
            l[0].initial_difficulty,
            l[0].max_connections.get()
        ),
        (16.0, 4096.0, 256.0, 100)
    );
    // Unset fields come from [vardiff] and [proxy]; the site start moves into the range.
    assert_eq!(
        (
            l[1].min_difficulty,
            l[1].max_difficulty,
            l[1].initial_difficulty,
            l[1].max_connections.get()
        ),
        (65536.0, 1_000_000.0, 65536.0, 500)
    );
    assert_eq!(l[1].pool_group.as_deref(), Some("fleet"));
    assert_eq!(
        l[2].tls,
        Some(ListenerTls {
            cert: "c.pem".into(),
            key: "k.pem".into()
        })
    );
    // Two listeners on port 0 are two free ports, not a clash.
    assert_eq!(l[3].listen.port(), 0);
}

#[test]
fn bad_listeners_are_named() {
    let one = |body: &str| {
        format!("{POOL}[[listeners]]\nname = \"a\"\nlisten = \"127.0.0.1:3333\"\n{body}")
    };
    let cases = [
        (
            format!("{POOL}[[listeners]]\nlisten = \"127.0.0.1:1\"\n"),
            "listeners[0].name",
        ),
        (
            format!("{POOL}[[listeners]]\nname = \"a b\"\nlisten = \"127.0.0.1:1\"\n"),
            "listeners[0].name",
        ),
        (
            format!("{POOL}[[listeners]]\nname = \"a\"\n"),
            "listeners[0].listen",
        ),
        (
            one("[[listeners]]\nname = \"a\"\nlisten = \"127.0.0.1:2\"\n"),
            "listeners[1].name",
        ),
        (
            one("[[listeners]]\nname = \"b\"\nlisten = \"0.0.0.0:3333\"\n"),
            "listeners[1].listen",
        ),
        (
            one("min_difficulty = 10\nmax_difficulty = 5\n"),
            "listeners[0].min_difficulty",
        ),
        (one("max_difficulty = -1\n"), "listeners[0].max_difficulty"),
        (
            one("min_difficulty = 10\ninitial_difficulty = 5\n"),
            "listeners[0].initial_difficulty",
        ),
        (one("max_connections = 0\n"), "listeners[0].max_connections"),
        (one("pool_group = \" \"\n"), "listeners[0].pool_group"),
        (one("tls_cert = \"c.pem\"\n"), "listeners[0].tls_key"),
        (one("tls_key = \"k.pem\"\n"), "listeners[0].tls_cert"),
        (
            String::from(
                "[proxy]\naccount = \"s\"\nlisten = \"0.0.0.0:3333\"\n[[pools]]\nurl = \"h:1\"\n\
                 [[listeners]]\nname = \"a\"\nlisten = \"127.0.0.1:3334\"\n",
            ),
            "proxy.listen",
        ),
    ];
    for (text, field) in cases {
        assert_eq!(invalid_field(&text), field, "{text}");
    }
    // Different addresses on one port are different sockets.
    Config::from_toml(&one(
        "[[listeners]]\nname = \"b\"\nlisten = \"127.0.0.2:3333\"\n",
    ))
    .unwrap();
}

#[test]
fn a_reload_names_each_listener_added_removed_or_changed() {
    let with = |listeners: &str| Config::from_toml(&format!("{POOL}{listeners}")).unwrap();
    let a = "[[listeners]]\nname = \"a\"\nlisten = \"127.0.0.1:3333\"\n";
    let b = "[[listeners]]\nname = \"b\"\nlisten = \"127.0.0.1:3334\"\n";
    let b_changed =
        "[[listeners]]\nname = \"b\"\nlisten = \"127.0.0.1:3334\"\nmax_difficulty = 9\n";
    let c = "[[listeners]]\nname = \"c\"\nlisten = \"127.0.0.1:3335\"\n";
    let running = with(&format!("{a}{b}"));
    assert!(restart_needed(&running, &with(&format!("{a}{b}"))).is_empty());
    assert_eq!(
        restart_needed(&running, &with(&format!("{a}{b_changed}{c}"))),
        ["listeners.b", "listeners.c"]
    );
    assert_eq!(restart_needed(&running, &with(a)), ["listeners.b"]);
    // From the implicit listener to explicit ones: the new ports are named.
    assert_eq!(restart_needed(&with(""), &with(a)), ["listeners.a"]);
}

#[test]
fn the_commented_two_port_example_of_the_default_file_validates() {
    let lines: Vec<&str> = DEFAULT_TOML.lines().collect();
    let first = lines
        .iter()
        .position(|l| *l == "# [[listeners]]")
        .expect("the default file shows [[listeners]]");
    let len = lines[first..]
        .iter()
        .position(|l| !l.starts_with("# "))
        .expect("the example ends");
    let example: Vec<&str> = lines[first..first + len].iter().map(|l| &l[2..]).collect();
    // With [[listeners]] the file leaves proxy.listen out.
    let text: String = lines[..first]
        .iter()
        .filter(|l| !l.starts_with("listen = "))
        .chain(example.iter())
        .chain(lines[first + len..].iter())
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    // The s21 port names the group "main" of the (separately commented) split example.
    let text =
        format!("{text}\n[[pool_groups]]\nname = \"main\"\npools = [\"primary\", \"backup\"]\n");
    let cfg = Config::from_toml(&text).expect("the [[listeners]] example must validate");
    let l = cfg.listeners();
    assert_eq!(l.len(), 2);
    assert_eq!((&*l[0].name, l[0].listen.port()), ("home", 3333));
    assert_eq!((&*l[1].name, l[1].listen.port()), ("s21", 3334));
    assert_eq!(
        (l[0].initial_difficulty, l[1].initial_difficulty),
        (512.0, 262144.0)
    );
    assert!(l[1].tls.is_some() && l[0].tls.is_none());
    assert_eq!(l[1].pool_group.as_deref(), Some("main"));
}

const TWO_GROUPS: &str = r#"
[proxy]
account = "site"
[[pools]]
name = "a1"
url = "stratum+tcp://127.0.0.1:3333"
[[pools]]
name = "a2"
url = "stratum+tcp://127.0.0.1:3334"
[[pools]]
name = "b1"
url = "stratum+tcp://127.0.0.1:3335"
[[pool_groups]]
name = "main"
weight = 70
pools = ["a2", "a1"]
[[pool_groups]]
name = "second"
weight = 30
pools = ["b1"]
[[routes]]
worker = "acme.*"
group = "second"
[split]
min_move_interval_secs = "1m"
"#;

#[test]
fn pool_groups_routes_and_split_validate() {
    let cfg = Config::from_toml(TWO_GROUPS).unwrap();
    let split = &cfg.split;
    assert_eq!(split.groups.len(), 2);
    assert_eq!(&*split.groups[0].name, "main");
    assert_eq!(split.groups[0].weight, 70.0);
    // The group's own failover order, not the [[pools]] order.
    let order: Vec<_> = split.groups[0]
        .pools_of(&cfg.pools)
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(order, ["a2", "a1"]);
    assert_eq!(split.route_of("acme.rig7"), Some(1));
    assert_eq!(split.route_of("site.rig7"), None);
    assert_eq!(split.min_move_interval, Duration::from_secs(60));
    assert_eq!(split.rebalance_interval, Duration::from_secs(10));
}

#[test]
fn without_pool_groups_every_pool_is_one_group() {
    let cfg = Config::from_toml(MINIMAL).unwrap();
    assert_eq!(cfg.split.groups.len(), 1);
    assert_eq!(&*cfg.split.groups[0].name, "default");
    assert_eq!(cfg.split.groups[0].pools, None);
    assert_eq!(cfg.split.min_move_interval, Duration::from_secs(300));
}

#[test]
fn bad_pool_groups_name_the_field() {
    let bad = |from: &str, to: &str| invalid_field(&TWO_GROUPS.replacen(from, to, 1));
    assert_eq!(
        bad("pools = [\"b1\"]", "pools = [\"nope\"]"),
        "pool_groups[1].pools"
    );
    assert_eq!(
        bad("pools = [\"b1\"]", "pools = [\"a1\"]"),
        "pool_groups[1].pools"
    );
    assert_eq!(
        bad("pools = [\"b1\"]", "pools = []"),
        "pool_groups[1].pools"
    );
    assert_eq!(bad("weight = 30", "weight = 0"), "pool_groups[1].weight");
    assert_eq!(bad("weight = 30", "weight = -3"), "pool_groups[1].weight");
    assert_eq!(
        bad("name = \"second\"", "name = \"main\""),
        "pool_groups[1].name"
    );
    assert_eq!(
        bad("group = \"second\"", "group = \"third\""),
        "routes[0].group"
    );
    assert_eq!(
        bad("worker = \"acme.*\"", "worker = \"\""),
        "routes[0].worker"
    );
    // A pool left out of every group would never be used.
    assert_eq!(
        bad("pools = [\"a2\", \"a1\"]", "pools = [\"a2\"]"),
        "pool_groups"
    );
    let msg = Config::from_toml(&TWO_GROUPS.replacen("pools = [\"b1\"]", "pools = [\"a1\"]", 1))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("already in group \"main\""), "{msg}");
}

#[test]
fn reload_names_group_changes_and_applies_membership() {
    let running = Config::from_toml(TWO_GROUPS).unwrap();
    let weights = Config::from_toml(&TWO_GROUPS.replacen("weight = 30", "weight = 40", 1)).unwrap();
    assert_eq!(restart_needed(&running, &weights), ["pool_groups"]);
    let routes = Config::from_toml(&TWO_GROUPS.replacen("acme.*", "acme-*", 1)).unwrap();
    assert_eq!(restart_needed(&running, &routes), ["routes"]);
    // Moving a pool between groups is a pool reload, not a restart.
    let moved = Config::from_toml(
        &TWO_GROUPS
            .replacen("pools = [\"a2\", \"a1\"]", "pools = [\"a2\"]", 1)
            .replacen("pools = [\"b1\"]", "pools = [\"b1\", \"a1\"]", 1),
    )
    .unwrap();
    assert!(restart_needed(&running, &moved).is_empty());
    let (old, new) = (
        crate::upstream::PoolSet::of(&running),
        crate::upstream::PoolSet::of(&moved),
    );
    assert_eq!(old.describe_change(&new), ["pool group membership"]);
    // Each group's channel servers take their slice of the pool list, in the group's order.
    let names = |set: &crate::upstream::PoolSet, g: usize| {
        set.group_pools(g)
            .into_iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&old, 0), ["a2", "a1"]);
    assert_eq!(names(&old, 1), ["b1"]);
    assert_eq!(names(&new, 0), ["a2"]);
    assert_eq!(names(&new, 1), ["b1", "a1"]);
    assert!(names(&new, 2).is_empty());
}

#[test]
fn a_listener_pool_group_must_name_a_group() {
    let with = |groups: &str, group: &str| {
        format!(
            "[proxy]\naccount = \"s\"\n[[pools]]\nname = \"a\"\nurl = \"h:1\"\n{groups}\
             [[listeners]]\nname = \"home\"\nlisten = \"127.0.0.1:0\"\n\
             [[listeners]]\nname = \"fleet\"\nlisten = \"127.0.0.1:0\"\npool_group = \"{group}\"\n"
        )
    };
    // Without [[pool_groups]] the one group is "default".
    assert!(Config::from_toml(&with("", "default")).is_ok());
    assert_eq!(invalid_field(&with("", "main")), "listeners[1].pool_group");
    let groups = "[[pool_groups]]\nname = \"main\"\npools = [\"a\"]\n";
    let cfg = Config::from_toml(&with(groups, "main")).unwrap();
    assert_eq!(cfg.split.group_index("main"), Some(0));
    match Config::from_toml(&with(groups, "mian")) {
        Err(ConfigError::Invalid { field, reason }) => {
            assert_eq!(field, "listeners[1].pool_group");
            assert!(
                reason.contains("\"mian\"") && reason.contains("main"),
                "{reason}"
            );
        }
        other => panic!("expected an invalid-field error, got {other:?}"),
    }
}
