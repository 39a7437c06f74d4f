//! Why an SMF request failed.

/// Why a request failed; each maps to an HTTP status and names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmfError {
    /// A request field is missing or wrong.
    #[error("{field}: {msg}")]
    BadRequest { field: &'static str, msg: String },
    /// The session already exists.
    #[error("session ({ue_id}, {psi}) already exists")]
    Duplicate { ue_id: String, psi: u8 },
    /// No such session.
    #[error("no session ({ue_id}, {psi})")]
    NotFound { ue_id: String, psi: u8 },
    /// The session is being set up, released or restored.
    #[error("session ({ue_id}, {psi}) is busy ({state})")]
    Busy {
        ue_id: String,
        psi: u8,
        state: &'static str,
    },
    /// The UPF's pool for the DNN has no free address.
    #[error("UE address pool of {upf}/{dnn} is exhausted")]
    PoolExhausted { upf: String, dnn: String },
    /// The UPF has no PFCP association.
    #[error("UPF {0} is not associated")]
    NotAssociated(String),
    /// The UPF did not answer after N1 retransmissions.
    #[error("UPF {upf} did not answer the {what}")]
    UpfTimeout { upf: String, what: &'static str },
    /// The UPF refused a request.
    #[error("UPF {upf} rejected the {what}: cause {cause}{}", offending_ie.map(|i| format!(", offending IE {i}")).unwrap_or_default())]
    UpfRejected {
        upf: String,
        what: &'static str,
        cause: u8,
        offending_ie: Option<u16>,
    },
    /// The UPF's answer lacked something we need.
    #[error("UPF {upf}: {msg}")]
    UpfBadAnswer { upf: String, msg: String },
    /// The gNB's N2-lite API failed.
    #[error("gNB {gnb}: {msg}")]
    N2Failed { gnb: String, msg: String },
    /// The UPF restarted or the session was lost while the request ran.
    #[error("{0}")]
    Aborted(String),
}

impl SmfError {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            SmfError::BadRequest { .. } => 400,
            SmfError::Duplicate { .. } | SmfError::Busy { .. } => 409,
            SmfError::NotFound { .. } => 404,
            SmfError::PoolExhausted { .. } | SmfError::NotAssociated(_) => 503,
            SmfError::UpfTimeout { .. } => 504,
            SmfError::UpfRejected { .. }
            | SmfError::UpfBadAnswer { .. }
            | SmfError::N2Failed { .. }
            | SmfError::Aborted(_) => 502,
        }
    }

    /// The request field at fault, if any.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            SmfError::BadRequest { field, .. } => Some(field),
            SmfError::Duplicate { .. } => Some("pdu_session_id"),
            SmfError::PoolExhausted { .. } => Some("dnn"),
            SmfError::NotAssociated(_) => Some("upf"),
            SmfError::N2Failed { .. } => Some("gnb"),
            _ => None,
        }
    }
}
