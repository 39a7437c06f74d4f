//! Unit tests of the plan: addresses, tokens, purity, and every generated
//! configuration parsed by its daemon's own parser.

use super::*;

fn paper() -> Plan {
    Plan::derive(&Topology::paper_default()).expect("paper topology derives")
}

#[test]
fn paper_addresses_and_pools() {
    let p = paper();
    let names: Vec<_> = p.daemons.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "upf1",
            "upf2",
            "smf",
            "gnb1",
            "ue1",
            "cloud",
            "repo",
            "agent-edge1",
            "agent-edge2"
        ]
    );
    let app = p.app.as_ref().expect("the paper topology has a cloud");
    let edges: Vec<_> = app
        .edges
        .iter()
        .map(|e| (e.name.as_str(), e.n6, e.cloud_addr))
        .collect();
    assert_eq!(
        edges,
        [
            (
                "edge1",
                Some(Ipv4Addr::new(10, 61, 0, 2)),
                Ipv4Addr::new(10, 71, 0, 2)
            ),
            (
                "edge2",
                Some(Ipv4Addr::new(10, 62, 0, 2)),
                Ipv4Addr::new(10, 72, 0, 2)
            )
        ]
    );
    assert_eq!(p.smf_node, "core");
    assert_eq!(p.smf_api.to_string(), "10.0.0.1:7000");
    let u1 = p.upf("upf1").expect("upf1");
    assert_eq!(u1.n4.to_string(), "10.0.0.11:8805");
    assert_eq!(u1.n3, Ipv4Addr::new(10, 3, 0, 11));
    assert_eq!(u1.n6, Ipv4Addr::new(10, 61, 0, 1));
    assert_eq!((u1.edge.as_str(), u1.dnn.as_str()), ("edge1", "edge1"));
    assert_eq!(u1.edge_n6, Ipv4Addr::new(10, 61, 0, 2));
    assert_eq!(u1.pool, "10.45.0.0/16");
    let u2 = p.upf("upf2").expect("upf2");
    assert_eq!(u2.n4.to_string(), "10.0.0.12:8805");
    assert_eq!(u2.n3, Ipv4Addr::new(10, 3, 0, 12));
    assert_eq!(
        (u2.edge.as_str(), u2.pool.as_str()),
        ("edge2", "10.46.0.0/16")
    );
    let g = &p.gnbs[0];
    assert_eq!(g.n1_api.to_string(), "10.10.1.1:7001");
    assert_eq!(g.n2_api.to_string(), "10.0.0.2:7002");
    assert_eq!(g.n3, Ipv4Addr::new(10, 3, 0, 1));
    let ue = p.ue("ue1").expect("ue1");
    assert_eq!(ue.ue_id, "imsi-001010000000001");
    assert_eq!(ue.gnb, "gnb1");
    assert_eq!(p.dnns().get("edge2").map(String::as_str), Some("upf2"));
}

#[test]
fn tokens_are_fresh_and_reach_the_logic_server() {
    let (mut a, mut b) = (paper(), paper());
    a.issue_tokens();
    b.issue_tokens();
    let token = |p: &Plan| p.app.as_ref().expect("app").accounts[0].2.clone();
    assert_ne!(token(&a), token(&b), "a fresh token per testbed");
    assert!(!token(&a).contains('@'));
    let cloud = a.daemon("cloud").expect("cloud");
    assert!(
        cloud.args.contains(&format!("ue1:{}", token(&a))),
        "{:?}",
        cloud.args
    );
    assert!(!cloud.config.contains("@TOKEN"), "{}", cloud.config);
}

#[test]
fn the_agent_token_is_fresh_and_reaches_agents_and_smf() {
    let (mut a, mut b) = (paper(), paper());
    assert_eq!(a.agent_token(), Some("@AGENT-TOKEN@"), "issued at up");
    a.issue_tokens();
    b.issue_tokens();
    let t = a.agent_token().expect("app").to_string();
    assert_ne!(
        Some(t.as_str()),
        b.agent_token(),
        "a fresh token per testbed"
    );
    assert_eq!(t.len(), 32, "128-bit token in hex");
    for d in a.daemons.iter().filter(|d| d.role == Role::Agent) {
        let i = d.args.iter().position(|x| x == "--token").expect("--token");
        assert_eq!(d.args[i + 1], t, "{}", d.name);
    }
    let smf = a.daemon("smf").expect("smf");
    let cfg = smf_lite::Config::parse(&smf.config).expect("smf.toml");
    assert!(!cfg.edge.is_empty());
    for e in &cfg.edge {
        assert_eq!(e.token.as_deref(), Some(t.as_str()), "{}", e.name);
    }
    assert!(a.daemons.iter().all(|d| !d.config.contains("@AGENT")));
}

#[test]
fn derive_is_pure_and_prefix_independent() {
    let a = paper();
    assert_eq!(a, paper(), "same input, same output");
    let t = Topology::paper_default()
        .with_prefix("zz-")
        .expect("prefix");
    assert_eq!(
        Plan::derive(&t).expect("derives"),
        a,
        "addresses do not depend on the namespace prefix"
    );
}

/// The application's command line, parsed by its own argument types.
#[derive(clap::Parser)]
struct AppCli {
    #[command(subcommand)]
    cmd: AppCmd,
}
#[derive(clap::Subcommand)]
enum AppCmd {
    Cloud(::app::cloud::CloudArgs),
    RepoServer(::app::repo::RepoServerArgs),
    Agent(::app::agent::AgentArgs),
}

fn app_args(d: &DaemonPlan) -> AppCmd {
    use clap::Parser;
    let argv = std::iter::once("app".to_string()).chain(d.args.iter().cloned());
    AppCli::try_parse_from(argv)
        .unwrap_or_else(|e| panic!("{}: {e}\n{:?}", d.name, d.args))
        .cmd
}

#[test]
fn generated_configs_parse_with_each_daemons_own_parser() {
    let mut p = paper();
    p.issue_tokens();
    for d in &p.daemons {
        match d.role {
            Role::Cloud => {
                let AppCmd::Cloud(c) = app_args(d) else {
                    panic!("{d:?}")
                };
                assert_eq!(c.listen.port(), CLOUD_SYNC_PORT);
                assert_eq!(c.metrics.port(), CLOUD_STATS_PORT);
                assert_eq!(c.account.len(), 1, "{:?}", c.account);
                let (name, token) = c.account[0].split_once(':').expect("NAME:TOKEN");
                assert_eq!(name, "ue1");
                assert_eq!(token.len(), 32, "128-bit token in hex");
                let app = p.app.as_ref().expect("app plan");
                assert_eq!(app.accounts[0].2, token);
            }
            Role::Repo => {
                let AppCmd::RepoServer(c) = app_args(d) else {
                    panic!("{d:?}")
                };
                assert_eq!(c.listen.port(), REPO_PORT);
                assert_eq!(c.publish_snake, 32 << 20);
                assert!(c.dir.starts_with("@RUN@"), "{:?}", c.dir);
            }
            Role::Agent => {
                let AppCmd::Agent(c) = app_args(d) else {
                    panic!("{d:?}")
                };
                let (edge, cloud, ie) = match d.node.as_str() {
                    "edge1" => ("edge1", "10.71.0.2", "10.80.0.1"),
                    "edge2" => ("edge2", "10.72.0.2", "10.80.0.2"),
                    other => panic!("agent on {other}"),
                };
                assert_eq!(d.name, format!("agent-{edge}"));
                assert_eq!(c.listen.port(), AGENT_PORT);
                assert_eq!(c.cloud_sync, format!("{cloud}:{CLOUD_SYNC_PORT}"));
                assert_eq!(c.cloud_repo, format!("http://{cloud}:{REPO_PORT}"));
                // Its instances are told apart at the cloud by the edge.
                assert_eq!(c.name, edge);
                // The state-copy listener on the inter-edge link.
                let copy = format!("{ie}:{}", super::app::COPY_PORT);
                assert_eq!(c.copy_listen.map(|a| a.to_string()), Some(copy));
            }
            Role::Upf => {
                let c = upf::config::Config::from_toml(&d.config)
                    .unwrap_or_else(|e| panic!("{}: {e}\n{}", d.name, d.config));
                let u = p.upf(&d.name).expect("upf");
                assert_eq!(c.n3.addrs, vec![u.n3]);
                assert_eq!(c.n4.addr, u.n4);
                assert_eq!(
                    c.n4.smf,
                    vec!["10.0.0.1:8805".parse::<SocketAddr>().expect("address")]
                );
                assert_eq!(c.n6.ue_pools, vec![u.pool.clone()]);
                assert_eq!(c.metrics.addr, u.metrics);
            }
            Role::Smf => {
                let c = smf_lite::Config::parse(&d.config)
                    .unwrap_or_else(|e| panic!("smf: {e}\n{}", d.config));
                assert_eq!(c.cp_ipv4(), Some(Ipv4Addr::new(10, 0, 0, 1)));
                assert_eq!(c.api_bind.to_string(), "10.0.0.1:7000");
                assert_eq!(c.timers.heartbeat_ms, SMF_HEARTBEAT_MS);
                let got: Vec<_> = c
                    .upf
                    .iter()
                    .map(|u| (u.name.as_str(), u.n4.to_string(), u.dnn[0].pool.as_str()))
                    .collect();
                assert_eq!(
                    got,
                    [
                        ("upf1", "10.0.0.11:8805".to_string(), "10.45.0.0/16"),
                        ("upf2", "10.0.0.12:8805".to_string(), "10.46.0.0/16")
                    ]
                );
                let edges: Vec<_> = c
                    .edge
                    .iter()
                    .map(|e| {
                        (
                            e.name.as_str(),
                            e.upf.as_str(),
                            e.dnn(),
                            e.agent.to_string(),
                        )
                    })
                    .collect();
                assert_eq!(
                    edges,
                    [
                        ("edge1", "upf1", "edge1", "10.0.0.21:7400".to_string()),
                        ("edge2", "upf2", "edge2", "10.0.0.22:7400".to_string())
                    ]
                );
                assert_eq!(c.edge[1].app_server.to_string(), "10.62.0.2");
                assert_eq!(c.migration.countdown_ms, 10_000);
                let gnbs: Vec<_> = c.known_gnbs().into_iter().map(|g| g.name).collect();
                assert_eq!(gnbs, ["gnb1"], "every gNB listed for the SMF's audit");
                let g = c.default_gnb.expect("default gNB");
                assert_eq!(
                    (g.name.as_str(), g.n2_api.as_str()),
                    ("gnb1", "10.0.0.2:7002")
                );
            }
            Role::Gnb => {
                let c = gnb::GnbConfig::from_toml(&d.config, &d.config_file)
                    .unwrap_or_else(|e| panic!("{}: {e}\n{}", d.name, d.config));
                assert_eq!(c.n1_api().to_string(), "10.10.1.1:7001");
                assert_eq!(c.n2_api().to_string(), "10.0.0.2:7002");
                assert_eq!(c.n3_addr, Ipv4Addr::new(10, 3, 0, 1));
                assert_eq!(c.smf_api.to_string(), "10.0.0.1:7000");
                // The paper's radio link is a veth to its one UE.
                assert_eq!(c.radio_link, gnb::radio::RadioLink::PointToPoint);
            }
            Role::Ue => {
                let c = ue::UeConfig::from_toml(&d.config, &d.config_file)
                    .unwrap_or_else(|e| panic!("{}: {e}\n{}", d.name, d.config));
                assert_eq!(c.ue_id, "imsi-001010000000001");
                assert_eq!(c.gnb_n1.to_string(), "10.10.1.1:7001");
                assert_eq!(c.api, d.api);
            }
        }
    }
}

#[test]
fn multi_ue_topology_maps_ues_to_their_cells() {
    let p = Plan::derive(&Topology::multi_ue()).expect("multi-ue derives");
    assert_eq!(p.gnbs.len(), 2);
    assert_eq!(p.ues.len(), 6);
    let ue4 = p.ue("ue4").expect("ue4");
    assert_eq!(ue4.gnb, "gnb2");
    assert_eq!(p.ue("ue1").expect("ue1").gnb, "gnb1");
    // Cells are switches: each gNB tells its UEs apart by address and MAC.
    assert!(p
        .gnbs
        .iter()
        .all(|g| g.radio_link == gnb::radio::RadioLink::Shared));
    // The SMF's UPF list and pools are the same as in the paper topology.
    assert_eq!(p.upfs, paper().upfs);
    // The SMF knows both cells' gNBs, so it audits both after a restart.
    let smf = p.daemon("smf").expect("smf");
    let c = smf_lite::Config::parse(&smf.config).expect("smf.toml");
    let gnbs: Vec<_> = c.known_gnbs().into_iter().map(|g| g.name).collect();
    assert_eq!(gnbs, ["gnb1", "gnb2"]);
}

#[test]
fn errors_say_what_is_missing() {
    let t = Topology::builder("x")
        .host("core")
        .host("upf1")
        .host("edge1")
        .switch("cp")
        .link(
            "cp-core",
            topo::end("core").ifname("cp").addr("10.0.0.1/24"),
            topo::end("cp"),
        )
        .link(
            "cp-upf1",
            topo::end("upf1").ifname("cp").addr("10.0.0.11/24"),
            topo::end("cp"),
        )
        .link(
            "n6a",
            topo::end("upf1").ifname("n6").addr("10.61.0.1/30"),
            topo::end("edge1").ifname("n6").addr("10.61.0.2/30"),
        )
        .build()
        .expect("valid topology");
    let e = Plan::derive(&t).expect_err("no n3 on upf1");
    assert_eq!(
        e,
        PlanError::MissingIface {
            node: "upf1".into(),
            ifname: "n3",
            role: "UPF (N3)"
        }
    );
    assert!(e.to_string().contains("`n3`"), "{e}");
    let t2 = Topology::builder("y").host("upf1").build().expect("valid");
    let e = Plan::derive(&t2).expect_err("no core");
    assert!(e.to_string().contains("core"), "{e}");
}

#[test]
fn supi() {
    assert_eq!(supi_for("ue1"), "imsi-001010000000001");
    assert_eq!(supi_for("ue42"), "imsi-001010000000042");
}

#[test]
fn smf_knows_every_edge_with_an_agent_and_a_upf_and_the_migration_timers() {
    let opts = PlanOpts {
        migration: MigrationTimers {
            countdown: Duration::from_millis(1500),
            setup_timeout: Duration::from_secs(8),
            switch_timeout: Duration::from_secs(20),
        },
        radio_link: Some(gnb::radio::RadioLink::EmulatedUes),
        session_mbr_kbps: Some(0),
    };
    let p = Plan::derive_with(&Topology::paper_default(), &opts).expect("derives");
    // No session MBR (0 each way), as `bench dataplane` asks; by default none is written.
    let smf = &p.daemon("smf").expect("smf").config;
    assert!(smf.contains("[mbr]\nul_kbps = 0\ndl_kbps = 0"), "{smf}");
    let plain = Plan::derive(&Topology::paper_default()).expect("derives");
    assert!(!plain.daemon("smf").expect("smf").config.contains("[mbr]"));
    // The radio link given overrides the topology's point-to-point veth.
    assert!(p
        .daemon("gnb1")
        .expect("gnb1")
        .config
        .contains("radio_link = \"emulated-ues\""));
    let smf: toml::Value = toml::from_str(&p.daemon("smf").expect("smf").config).expect("TOML");
    let edges: Vec<_> = smf["edge"]
        .as_array()
        .expect("[[edge]]")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or("?"),
                e["upf"].as_str().unwrap_or("?"),
                e["dnn"].as_str().unwrap_or("?"),
                e["agent"].as_str().unwrap_or("?"),
                e["app_server"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(
        edges,
        [
            ("edge1", "upf1", "edge1", "10.0.0.21:7400", "10.61.0.2"),
            ("edge2", "upf2", "edge2", "10.0.0.22:7400", "10.62.0.2")
        ]
    );
    let m = &smf["migration"];
    assert_eq!(m["countdown_ms"].as_integer(), Some(1500));
    assert_eq!(m["setup_timeout_ms"].as_integer(), Some(8000));
    assert_eq!(m["switch_timeout_ms"].as_integer(), Some(20_000));
    let app = p.app.as_ref().expect("app");
    assert!(app.edges.iter().all(EdgePlan::migratable));
    // The defaults are the manager's (DESIGN.md section 5).
    let d = paper();
    let smf: toml::Value = toml::from_str(&d.daemon("smf").expect("smf").config).expect("TOML");
    assert_eq!(smf["migration"]["countdown_ms"].as_integer(), Some(10_000));
    assert_eq!(
        smf["migration"]["switch_timeout_ms"].as_integer(),
        Some(15_000)
    );
}

/// The value after `flag` in a daemon's arguments.
fn arg<'a>(d: &'a super::DaemonPlan, flag: &str) -> &'a str {
    let i = d.args.iter().position(|a| a == flag);
    i.and_then(|i| d.args.get(i + 1)).map_or("", String::as_str)
}

#[test]
fn control_plane_services_listen_on_their_cp_side_only() {
    // DESIGN.md section 3: nothing a UE reaches (an edge's N6 address)
    // serves a control-plane API.
    let p = paper();
    let smf: toml::Value = toml::from_str(&p.daemon("smf").expect("smf").config).expect("TOML");
    assert_eq!(smf["api_bind"].as_str(), Some("10.0.0.1:7000"));
    for (e, cp) in [("edge1", "10.0.0.21:7400"), ("edge2", "10.0.0.22:7400")] {
        let d = p.daemon(&format!("agent-{e}")).expect("agent");
        assert_eq!(arg(d, "--listen"), cp);
        assert_eq!(d.api.to_string(), cp);
        assert_eq!(p.edge(e).expect("edge").agent_api.to_string(), cp);
    }
    let a = p.daemon("agent-edge1").expect("agent");
    assert_eq!(
        arg(a, "--input-host"),
        "10.61.0.2",
        "instances' input on N6"
    );
    let cloud = p.daemon("cloud").expect("cloud");
    assert_eq!(arg(cloud, "--metrics"), "127.0.0.1:7301");
    for d in &p.daemons {
        for flag in ["--listen", "--metrics", "--copy-listen"] {
            let a = arg(d, flag);
            // The cloud's sync and repository: any address of a node
            // whose only links are WAN links (one per edge).
            let wan_only = matches!(d.name.as_str(), "cloud" | "repo") && flag == "--listen";
            assert!(
                wan_only || !a.starts_with("0.0.0.0"),
                "{} {flag} {a}",
                d.name
            );
        }
    }
}

#[test]
fn an_edge_off_the_control_plane_or_without_a_upf_is_no_migration_edge() {
    let mut t = Topology::paper_default();
    // edge2 leaves the cp switch: the SMF cannot reach its agent.
    t.links.retain(|l| l.name != "cp-edge2");
    let p = Plan::derive(&t).expect("derives");
    let e2 = p.edge("edge2").expect("edge2 still has an agent");
    assert_eq!(e2.smf_agent, None);
    // Its agent serves only the testbed, inside the edge.
    assert_eq!(e2.agent_api.to_string(), "127.0.0.1:7400");
    assert!(!e2.migratable());
    let smf: toml::Value = toml::from_str(&p.daemon("smf").expect("smf").config).expect("TOML");
    let names: Vec<_> = smf["edge"]
        .as_array()
        .expect("[[edge]]")
        .iter()
        .map(|e| e["name"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(names, ["edge1"]);
}
