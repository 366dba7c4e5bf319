// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IDomainRegistry} from "./interfaces/IDomainRegistry.sol";
import {IPrimeErrors} from "./interfaces/IPrimeErrors.sol";

/// @title DomainRegistry
/// @notice Append-only list of compute domains (e.g. "inference"). Ids are array indexes starting at 0.
/// Written only by the PrimeNetwork bound at construction (its `createDomain` is federator-only and emits
/// `DomainCreated`).
contract DomainRegistry is IDomainRegistry, IPrimeErrors {
    address public immutable primeNetwork;

    Domain[] private _domains;

    /// @param primeNetwork_ the PrimeNetwork this registry belongs to
    constructor(address primeNetwork_) {
        if (primeNetwork_ == address(0)) revert ZeroAddress();
        primeNetwork = primeNetwork_;
    }

    /// @notice Appends a domain and returns its id. PrimeNetwork only.
    function create(string calldata name, string calldata parametersURI) external returns (uint256 domainId) {
        if (msg.sender != primeNetwork) revert CallerNotPrimeNetwork(msg.sender);
        domainId = _domains.length;
        _domains.push(Domain({domainId: domainId, name: name, parametersURI: parametersURI}));
    }

    /// @notice The domain with id `domainId`; reverts with DomainNotFound for an unknown id.
    function get(uint256 domainId) external view returns (Domain memory) {
        if (domainId >= _domains.length) revert DomainNotFound(domainId);
        return _domains[domainId];
    }

    /// @notice Number of domains; valid ids are 0..count-1.
    function count() external view returns (uint256) {
        return _domains.length;
    }

    /// @notice True when `domainId` names an existing domain.
    function exists(uint256 domainId) external view returns (bool) {
        return domainId < _domains.length;
    }
}
