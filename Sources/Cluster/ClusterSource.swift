/// Something that fills a ``ClusterStore`` from where the cluster state lives: the manifest folder
/// (``ManifestDirectorySource``) or, later, the Kubernetes API. Controllers read the store only and
/// never know which source runs.
public protocol ClusterSource: Sendable {
    /// Lists, then follows changes until the task is cancelled. Each complete list of a kind goes
    /// through ``ClusterStore/replaceAll(_:with:)`` so that deletions are seen.
    func run(into store: ClusterStore) async throws
}
